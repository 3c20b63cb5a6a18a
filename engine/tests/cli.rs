//! The offline commands through the real binary: `import` (with a bad line that is
//! dead-lettered), `query` (same JSON as the API), `verify`, `replay --check` and
//! `replay --until --out`, and `import` resuming from its committed position.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use riskstream_schemas::{json, Side};

fn riskstream(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_riskstream")).args(args).output().expect("the binary runs");
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn query(dir: &Path, path: &str) -> serde_json::Value {
    let out = riskstream(&["query", "--data-dir", dir.to_str().unwrap(), path]);
    assert!(out.status.success(), "query {path}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A JSON-lines file: a small book.
fn write_events(path: &Path) -> usize {
    let lines: Vec<String> = common::workload(4, 60).iter().map(json::encode).collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    lines.len()
}

/// The same book with a malformed line 6 and an oversell as the last line.
fn write_events_with_two_bad_lines(path: &Path) -> usize {
    let mut lines: Vec<String> = common::workload(4, 60).iter().map(json::encode).collect();
    lines.insert(5, "{\"type\": \"CashMovement\", broken".to_string());
    let oversell =
        common::ev("oversell", 5_000, common::trade("oversell", "acc-1", "user-0", "AAA", Side::Sell, "999", "1"));
    lines.push(json::encode(&oversell));
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    lines.len()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn import_query_verify_replay_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, dir) = (tmp.path().join("events.jsonl"), tmp.path().join("data"));
    let lines = write_events_with_two_bad_lines(&file);
    let d = dir.to_str().unwrap();

    let out = riskstream(&["import", file.to_str().unwrap(), "--data-dir", d, "--shards", "2", "--batch", "17"]);
    assert_eq!(out.status.code(), Some(1), "rejected lines make the import fail: {}", stderr(&out));
    assert!(stdout(&out).contains(&format!("imported {lines} lines")), "{}", stdout(&out));
    assert!(stdout(&out).contains(&format!("into {d}")), "names the data dir: {}", stdout(&out));
    assert!(stdout(&out).contains("2 rejected"), "{}", stdout(&out));
    // 1-based line numbers, as an editor shows them, with the reason.
    assert!(stderr(&out).contains("rejected line 6: malformed JSON"), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("rejected line {lines} (field `quantity`)")), "{}", stderr(&out));
    assert!(stderr(&out).contains("/v1/dead-letters"), "{}", stderr(&out));

    let letters = query(&dir, "/v1/dead-letters");
    let letters = letters["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 2);
    assert!(letters.iter().any(|l| l["raw"].as_str().unwrap().contains("broken") && l["index"] == 6));
    assert!(letters.iter().any(|l| l["field"] == "quantity" && l["index"] == lines));
    let canonical = file.canonicalize().unwrap();
    // The record names its file by canonical path and its line from 1.
    let record = query(&dir, "/v1/events/0/1");
    assert_eq!(record["source"], format!("file:{}#1", canonical.display()));

    let account = query(&dir, "/v1/accounts/acc-1");
    assert_eq!(account["account_id"], "acc-1");
    assert_eq!(account["positions"].as_array().unwrap().len(), 3);
    assert!(query(&dir, "/healthz")["shards"].as_array().unwrap().len() == 2);
    let missing = riskstream(&["query", "--data-dir", d, "/v1/accounts/nope"]);
    assert_eq!(missing.status.code(), Some(1), "a 404 exits 1");

    let verify = riskstream(&["verify", "--data-dir", d]);
    assert!(verify.status.success() && stdout(&verify).starts_with("ok:"), "{}", stdout(&verify));
    let check = riskstream(&["replay", "--data-dir", d, "--check"]);
    assert!(check.status.success(), "{}{}", stdout(&check), String::from_utf8_lossy(&check.stderr));
    assert!(stdout(&check).contains("\"difference\": null"));

    let out_dir = tmp.path().join("as-of-5");
    let until = riskstream(&["replay", "--data-dir", d, "--until", "5", "--out", out_dir.to_str().unwrap()]);
    assert!(until.status.success(), "{}", String::from_utf8_lossy(&until.stderr));
    let health = query(&out_dir, "/healthz");
    assert!(health["shards"].as_array().unwrap().iter().all(|s| s["seq"].as_u64().unwrap() <= 5));
    let again = riskstream(&["replay", "--data-dir", d, "--until", "5", "--out", out_dir.to_str().unwrap()]);
    assert!(!again.status.success(), "replay refuses to overwrite a data dir");
}

/// The same file under three spellings (relative, `./`, absolute through a
/// symlink) applies once: a deposit without an event id is counted once.
#[test]
fn a_file_imports_once_whatever_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"type":"AccountOpened","event_id":"open-a1","ts":"2026-01-05T14:30:00Z","account_id":"a1","user_id":"u1","tax_status":"taxable","base_currency":"USD"}"#,
            "\n",
            r#"{"type":"CashMovement","ts":"2026-01-05T14:31:00Z","account_id":"a1","user_id":"u1","kind":"deposit","amount":"500"}"#,
            "\n"
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(&file, tmp.path().join("link.jsonl")).unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let import = |spelling: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_riskstream"))
            .current_dir(tmp.path())
            .args(["import", spelling, "--data-dir", d])
            .output()
            .unwrap();
        assert!(out.status.success(), "{spelling}: {}", stderr(&out));
        out
    };
    import("f.jsonl");
    let link = tmp.path().join("link.jsonl");
    for spelling in ["./f.jsonl", link.to_str().unwrap()] {
        let again = import(spelling);
        assert!(stdout(&again).contains("imported 0 lines"), "{spelling}: {}", stdout(&again));
        assert!(stderr(&again).contains("resuming") && stderr(&again).contains("after line 2"), "{}", stderr(&again));
    }
    assert_eq!(query(&data, "/v1/accounts/a1")["cash"], "500");

    // Lines appended since are imported; an edited imported part is refused.
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&text.lines().nth(1).unwrap().replace("14:31", "14:32"));
    text.push('\n');
    std::fs::write(&file, &text).unwrap();
    assert!(stdout(&import("./f.jsonl")).contains("imported 1 lines"));
    assert_eq!(query(&data, "/v1/accounts/a1")["cash"], "1000");
    std::fs::write(&file, text.replace("500", "600")).unwrap();
    let refused = riskstream(&["import", file.to_str().unwrap(), "--data-dir", d]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("changed") && stderr(&refused).contains("--restart"), "{}", stderr(&refused));
    assert_eq!(query(&data, "/v1/accounts/a1")["cash"], "1000", "nothing applied");
    // --restart imports it as a new source: the opening (with an event id) is a
    // duplicate, both deposits (without one) apply again.
    let restarted = riskstream(&["import", file.to_str().unwrap(), "--data-dir", d, "--restart"]);
    assert!(restarted.status.success(), "{}", stderr(&restarted));
    assert!(stdout(&restarted).contains("imported 3 lines"), "{}", stdout(&restarted));
    assert_eq!(query(&data, "/v1/accounts/a1")["cash"], "2200");
}

/// A pretty-printed JSON array is not JSON lines: every line is rejected, and the
/// import says so and fails. Standard input imports like a file.
#[test]
fn an_import_with_every_line_rejected_fails_and_stdin_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("array.json");
    let events: Vec<serde_json::Value> =
        common::workload(1, 3).iter().map(|e| serde_json::from_str(&json::encode(e)).unwrap()).collect();
    std::fs::write(&file, serde_json::to_string_pretty(&events).unwrap()).unwrap();
    let total = std::fs::read_to_string(&file).unwrap().lines().count();
    let d = tmp.path().join("data");
    let out = riskstream(&["import", file.to_str().unwrap(), "--data-dir", d.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("{total} rejected")), "{}", stdout(&out));
    assert!(stderr(&out).contains("rejected line 1:"), "{}", stderr(&out));
    assert!(stderr(&out).contains("not shown"), "only the first lines are listed: {}", stderr(&out));

    let lines = tmp.path().join("events.jsonl");
    let n = write_events(&lines);
    let mut child = Command::new(env!("CARGO_BIN_EXE_riskstream"))
        .args(["import", "-", "--data-dir", tmp.path().join("stdin").to_str().unwrap()])
        .stdin(std::fs::File::open(&lines).unwrap())
        .output()
        .unwrap();
    assert!(child.status.success(), "{}", stderr(&child));
    assert!(stdout(&child).contains(&format!("imported {n} lines from standard input")), "{}", stdout(&child));
    child.stdout.clear();
    assert!(query(&tmp.path().join("stdin"), "/v1/accounts/acc-1")["positions"].as_array().unwrap().len() == 3);
}

#[test]
fn import_resumes_after_its_committed_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, dir) = (tmp.path().join("events.jsonl"), tmp.path().join("data"));
    write_events(&file);
    let d = dir.to_str().unwrap();
    assert!(riskstream(&["import", file.to_str().unwrap(), "--data-dir", d]).status.success());
    let before = query(&dir, "/healthz");
    // The same file again: the committed position makes it a no-op.
    let out = riskstream(&["import", file.to_str().unwrap(), "--data-dir", d]);
    assert!(stdout(&out).contains("imported 0 lines"), "{}", stdout(&out));
    assert_eq!(query(&dir, "/healthz"), before);
}

/// Failures say what is wrong on stderr; nothing but `run`, `import` and `demo`
/// makes a data dir.
#[test]
fn failures_say_what_is_wrong_and_make_no_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, data) = (tmp.path().join("events.jsonl"), tmp.path().join("data"));
    write_events(&file);
    let d = data.to_str().unwrap();
    let import = riskstream(&["import", file.to_str().unwrap(), "--data-dir", d]);
    assert!(import.status.success(), "{}", stderr(&import));
    assert!(stderr(&import).contains(&format!("creating data dir {d}")), "{}", stderr(&import));
    for (path, says) in [("/nope", "no route GET /nope"), ("/v1/events", "does not take GET"), ("/v1/accounts/x", "x")]
    {
        let out = riskstream(&["query", "--data-dir", d, path]);
        assert_eq!(out.status.code(), Some(1), "{path}");
        assert!(stderr(&out).contains(says), "{path}: `{}` should say `{says}`", stderr(&out));
        assert!(stdout(&out).is_empty(), "{path}: {}", stdout(&out));
    }
    let nodir = tmp.path().join("nodir");
    for args in [
        vec!["snapshot", "list", "--data-dir", nodir.to_str().unwrap()],
        vec!["snapshot", "create", "--data-dir", nodir.to_str().unwrap()],
        vec!["query", "--data-dir", nodir.to_str().unwrap(), "/healthz"],
        vec!["verify", "--data-dir", nodir.to_str().unwrap()],
    ] {
        let out = riskstream(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains("no riskstream data dir"), "{args:?}: {}", stderr(&out));
        assert!(!nodir.exists(), "{args:?} created {}", nodir.display());
    }
}

#[test]
fn errors_are_clear_and_exit_non_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("none");
    let out = riskstream(&["verify", "--data-dir", d.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no riskstream data dir"));
    let out = riskstream(&["import", "/no/such/file.jsonl", "--data-dir", tmp.path().join("x").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.jsonl"));
    let out = riskstream(&["replay", "--data-dir", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "--check or --until is required");
}

#[test]
fn replay_uses_the_rules_the_data_dir_was_created_with() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, dir) = (tmp.path().join("events.jsonl"), tmp.path().join("data"));
    write_events(&file);
    let (custom, defaults) = (tmp.path().join("tight.toml"), tmp.path().join("defaults.toml"));
    std::fs::write(&custom, "[rules]\nband_abs = \"0.01\"\nmarket_move = \"0.02\"\ncooldown_secs = 60\n").unwrap();
    std::fs::write(&defaults, "").unwrap();
    let d = dir.to_str().unwrap();
    let import = riskstream(&["import", file.to_str().unwrap(), "--data-dir", d, "--config", custom.to_str().unwrap()]);
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));

    let check = riskstream(&["replay", "--data-dir", d, "--check"]);
    assert!(check.status.success(), "stored rules reproduce the alerts: {}", stdout(&check));
    let wrong = riskstream(&["replay", "--data-dir", d, "--check", "--config", defaults.to_str().unwrap()]);
    assert_eq!(wrong.status.code(), Some(1), "other rules give other alerts: {}", stdout(&wrong));
    assert!(stdout(&wrong).contains("differ"), "{}", stdout(&wrong));
}

/// An auditor's round: the operator publishes the public key, checkpoints and
/// proofs (here read with `query`); `riskstream audit` checks them holding nothing
/// else, and refuses a forged proof, a tampered checkpoint and another key.
#[test]
fn audit_checks_checkpoints_and_proofs_with_only_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (d, file, config) = (data.to_str().unwrap(), dir.path().join("in.jsonl"), dir.path().join("rs.toml"));
    write_events(&file);
    std::fs::write(&config, "[audit]\ncheckpoint_every = 5\n").unwrap();
    let c = config.to_str().unwrap();
    let out = riskstream(&[
        "import",
        file.to_str().unwrap(),
        "--config",
        c,
        "--data-dir",
        d,
        "--shards",
        "2",
        "--batch",
        "9",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let key_out = riskstream(&["audit", "public-key", "--data-dir", d]);
    assert!(key_out.status.success(), "{}", String::from_utf8_lossy(&key_out.stderr));
    let key = stdout(&key_out).trim().to_string();
    assert_eq!(key.len(), 64, "{key}");

    let list = query(&data, "/v1/audit/0/checkpoints");
    let checkpoints = list["checkpoints"].as_array().unwrap();
    assert!(checkpoints.len() >= 2, "{list}");
    let (old, new) = (&checkpoints[0], &checkpoints[checkpoints.len() - 1]);
    let save = |name: &str, v: &serde_json::Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (old_file, new_file) = (save("old.json", old), save("new.json", new));
    let size = new["tree_size"].as_u64().unwrap();
    let inclusion = query(&data, &format!("/v1/audit/0/inclusion?seq=3&tree_size={size}"));
    let consistency =
        query(&data, &format!("/v1/audit/0/consistency?from={}&to={size}", old["tree_size"].as_u64().unwrap()));
    let (inc_file, con_file) = (save("inclusion.json", &inclusion), save("consistency.json", &consistency));

    let ok = |args: &[&str]| {
        let out = riskstream(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout(&out).starts_with("ok:"), "{}", stdout(&out));
    };
    ok(&["audit", "checkpoint", "--public-key", &key, &new_file]);
    ok(&["audit", "inclusion", "--public-key", &key, "--checkpoint", &new_file, &inc_file]);
    ok(&["audit", "consistency", "--public-key", &key, "--old", &old_file, "--new", &new_file, &con_file]);

    // docs/CLI.md: a check that does not hold exits 1, an input that cannot be used 2.
    let refused_with = |args: &[&str], says: &str, code: i32| {
        let out = riskstream(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.code() == Some(code) && err.contains(says),
            "{args:?} should exit {code} with `{says}`: {err}"
        );
    };
    let refused = |args: &[&str], says: &str| refused_with(args, says, 1);
    let mut forged = inclusion.clone();
    let first = forged["proof"][0].as_str().unwrap().to_string();
    forged["proof"][0] = format!("{}{}", if first.starts_with('0') { "1" } else { "0" }, &first[1..]).into();
    let forged_file = save("forged.json", &forged);
    refused(&["audit", "inclusion", "--public-key", &key, "--checkpoint", &new_file, &forged_file], "does not lead");
    let mut truncated = consistency.clone();
    truncated["proof"].as_array_mut().unwrap().pop();
    let truncated_file = save("truncated.json", &truncated);
    refused(
        &["audit", "consistency", "--public-key", &key, "--old", &old_file, "--new", &new_file, &truncated_file],
        "does not extend",
    );
    let mut tampered = new.clone();
    tampered["tree_size"] = (size + 1).into();
    let tampered_file = save("tampered.json", &tampered);
    refused(&["audit", "checkpoint", "--public-key", &key, &tampered_file], "signature does not verify");
    refused(&["audit", "inclusion", "--public-key", &key, "--checkpoint", &old_file, &inc_file], "the proof is for");
    refused_with(&["audit", "checkpoint", "--public-key", &"ab".repeat(32), &new_file], "not an Ed25519 public key", 2);
    refused_with(&["audit", "checkpoint", "--public-key", &key, "/no/such.json"], "/no/such.json", 2);
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, "07".repeat(32)).unwrap();
    let other = stdout(&riskstream(&["audit", "public-key", "--signing-key", other_key.to_str().unwrap()]));
    refused(&["audit", "checkpoint", "--public-key", other.trim(), &new_file], "not by the expected key");

    // The README's offline walkthrough: the public key from `query`, saved as a
    // file, is what `verify` and `audit` take.
    let served = query(&data, "/v1/audit/public-key");
    assert_eq!(served["public_key"], key.as_str(), "offline query names the signing key");
    let key_file = save("key.json", &served);
    let verified = riskstream(&["verify", "--data-dir", d, "--public-key", &key_file]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(stdout(&verified).contains(&format!("key {key}")), "{}", stdout(&verified));
    ok(&["audit", "checkpoint", "--public-key", &key_file, &new_file]);
    let foreign = riskstream(&["verify", "--data-dir", d, "--public-key", other.trim()]);
    assert_eq!(foreign.status.code(), Some(1), "{}", stdout(&foreign));
}
