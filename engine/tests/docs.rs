//! The docs stay true to the binary: every shell line of the README runs, in
//! order, against a small live demo on a free port (curl against its API, the
//! offline commands against its data dir) and must succeed; docs/CLI.md is what
//! `riskstream <command> --help` prints. Kafka lines and `make` are left to their
//! own tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_riskstream");
/// The demo's admin token, for the README's admin lines (`$RISKSTREAM_ADMIN_TOKEN`).
const ADMIN_TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn repo_file(name: &str) -> String {
    let dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let path = dir.parent().unwrap().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A command of the binary with no RISKSTREAM_* variables from the environment.
fn riskstream() -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("RISKSTREAM_") {
            command.env_remove(key);
        }
    }
    command
}

/// A `sh` code block of a markdown file, with the prose line just before it.
struct Block {
    after: String,
    section: String,
    lines: Vec<String>,
}

/// The `sh` blocks, continuation lines joined and comments dropped.
fn sh_blocks(markdown: &str) -> Vec<Block> {
    let (mut blocks, mut current, mut prose, mut section) = (Vec::new(), None::<Block>, String::new(), String::new());
    let mut pending = String::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None if line.trim() == "```sh" => {
                    current = Some(Block { after: prose.clone(), section: section.clone(), lines: Vec::new() });
                }
                None => {}
            }
            continue;
        }
        let Some(block) = current.as_mut() else {
            if line.starts_with('#') {
                section = line.trim_start_matches('#').trim().to_string();
            }
            if !line.trim().is_empty() {
                prose = line.to_string();
            }
            continue;
        };
        // A comment starts at `#` after two spaces or at the line's start.
        let code = line.find("  #").map_or(line, |i| &line[..i]);
        let code = if code.trim_start().starts_with('#') { "" } else { code.trim_end() };
        match code.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None if !pending.is_empty() || !code.is_empty() => {
                pending.push_str(code);
                block.lines.push(std::mem::take(&mut pending).trim().to_string());
            }
            None => {}
        }
    }
    blocks
}

/// A small demo on a free port (the stress profile, so alerts come at once),
/// signing checkpoints often so the audit walkthrough has several.
struct Demo {
    child: Child,
    base: String,
}

impl Demo {
    fn start(data: &Path, config: &Path) -> Demo {
        let mut child = riskstream()
            .args(["demo", "--listen", "127.0.0.1:0", "--accounts", "40", "--symbols", "30", "--positions", "5"])
            .args([
                "--stress",
                "--rate",
                "5000",
                "--data-dir",
                data.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the demo starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let base = loop {
            let line = lines.next().expect("the demo prints its API address").unwrap();
            if let Some(rest) = line.trim().strip_prefix("API") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep reading its progress lines, so the pipe never fills.
        std::thread::spawn(move || lines.for_each(drop));
        Demo { child, base }
    }

    /// Ctrl-C: the demo stops cleanly and closes its data dir.
    fn stop(mut self) {
        Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the demo stops cleanly on Ctrl-C: {status}");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl(url: &str) -> Option<serde_json::Value> {
    let out = Command::new("curl").args(["-fsS", url]).output().expect("curl runs (deploy/dev/install-deps.sh)");
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// Waits until shard 0 has signed two checkpoints (the walkthrough's old and new)
/// and every shard holds the 1,200 records its `as_of=1200` example asks for.
fn wait_for_checkpoints(base: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let long_enough = curl(&format!("{base}/healthz")).is_some_and(|h| {
            h["shards"].as_array().is_some_and(|s| s.iter().all(|s| s["seq"].as_u64().unwrap_or(0) > 1_500))
        });
        if let (Some(list), true) = (curl(&format!("{base}/v1/audit/0/checkpoints")), long_enough) {
            if list["checkpoints"].as_array().is_some_and(|c| c.len() >= 2) {
                return list;
            }
        }
        assert!(Instant::now() < deadline, "the demo signed no two checkpoints in 120 s");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until the notifier has put a message in the user's inbox (the README reads one).
fn wait_for_inbox(base: &str, user: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let has_a_message = || {
        curl(&format!("{base}/v1/users/{user}/inbox"))
            .is_some_and(|p| p["items"].as_array().is_some_and(|i| !i.is_empty()))
    };
    while !has_a_message() {
        assert!(Instant::now() < deadline, "no message reached {user}'s inbox in 120 s");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The demo's local receiver got the alerts, signed: every signature checks, and
/// the secret is where the answer says.
fn demo_webhooks_verify(base: &str, demo_dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let got = loop {
        let got = curl(&format!("{base}/v1/demo/webhook")).unwrap();
        if got["received"].as_u64().unwrap() > 0 {
            break got;
        }
        assert!(Instant::now() < deadline, "no alert reached the demo's webhook receiver: {got}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(got["verified"], got["received"], "{got}");
    assert!(got["last"][0]["alert_id"].is_string() && got["last"][0]["verified"] == true, "{got}");
    let secret = std::fs::read_to_string(demo_dir.join("demo-webhook.secret")).unwrap();
    assert!(secret.starts_with("whsec_") && got["how_to_verify"].as_str().unwrap().contains("demo-webhook.secret"));
}

struct Walkthrough {
    work: PathBuf,
    demo_dir: PathBuf,
    /// The data dir of "Running it for real" (the demo holds its own).
    own_dir: PathBuf,
    base: String,
    alert_id: String,
}

impl Walkthrough {
    /// The line as it runs here: the binary, the demo's address and data dir.
    fn localize(&self, line: &str, section: &str) -> Option<String> {
        let kafka =
            ["--brokers", "--kafka-brokers", "127.0.0.1:8081", "127.0.0.1:8082"].iter().any(|k| line.contains(k));
        if line.starts_with("make ") || line.starts_with("riskstream run") || kafka {
            return None;
        }
        let data = if section.starts_with("Running it for real") { &self.own_dir } else { &self.demo_dir };
        let line = if line.starts_with("B=") { format!("B={BIN}") } else { line.to_string() };
        let line = line
            .replace("http://127.0.0.1:8080", &self.base)
            .replace("curl ", "curl -fsS ")
            .replace("/var/lib/riskstream", data.to_str().unwrap())
            .replace("riskstream-demo", data.to_str().unwrap())
            .replace("/tmp/march", self.work.join("march").to_str().unwrap())
            .replace("<alert_id>", &self.alert_id);
        let line = match line.strip_prefix("riskstream ") {
            Some(rest) => format!("{BIN} {rest}"),
            None => line,
        };
        Some(line)
    }

    /// Runs a block's lines as one script (so a variable set on one line is there
    /// on the next), stopping at the first that fails.
    fn run(&self, line: &str) -> Output {
        let out = Command::new("bash")
            .args(["-e", "-o", "pipefail", "-c", line])
            .current_dir(&self.work)
            .env("B", BIN)
            .env("RISKSTREAM_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).chars().take(2_000).collect::<String>();
        assert!(out.status.success(), "README block failed:\n{line}\n{}{}", text(&out.stdout), text(&out.stderr));
        out
    }
}

#[test]
fn every_readme_command_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let config = tmp.path().join("demo.toml");
    std::fs::write(&config, format!("[audit]\ncheckpoint_every = 300\n[api]\nadmin_token = \"{ADMIN_TOKEN}\"\n"))
        .unwrap();
    let demo_dir = tmp.path().join("demo");
    let mut demo = Some(Demo::start(&demo_dir, &config));
    let base = demo.as_ref().unwrap().base.clone();
    let checkpoints = wait_for_checkpoints(&base);
    // "Yesterday's" checkpoint of the consistency walkthrough, and a file to import.
    std::fs::write(work.join("old.json"), checkpoints["checkpoints"][0].to_string()).unwrap();
    std::fs::write(
        work.join("events.jsonl"),
        concat!(
            r#"{"type":"AccountOpened","ts":"2026-01-05T14:30:00Z","account_id":"a1","user_id":"u1","tax_status":"taxable","base_currency":"USD"}"#,
            "\n",
            r#"{"type":"CashMovement","ts":"2026-01-05T14:31:00Z","account_id":"a1","user_id":"u1","kind":"deposit","amount":"500"}"#,
            "\n"
        ),
    )
    .unwrap();
    wait_for_inbox(&base, "usr-000001");
    demo_webhooks_verify(&base, &demo_dir);
    let alerts = curl(&format!("{base}/v1/alerts?since=0&limit=1")).unwrap();
    let alert_id = alerts["alerts"][0]["alert_id"].as_str().expect("the demo raised an alert").to_string();
    let mut walk = Walkthrough { work, demo_dir: demo_dir.clone(), own_dir: tmp.path().join("own"), base, alert_id };

    let mut ran = 0;
    for block in sh_blocks(&repo_file("README.md")) {
        // The block after "After stopping it" runs with the demo stopped.
        let stopped = block.after.contains("After stopping it");
        if stopped {
            demo.take().unwrap().stop();
        }
        let script: Vec<String> = block.lines.iter().filter_map(|l| walk.localize(l, &block.section)).collect();
        if !script.is_empty() {
            walk.run(&script.join("\n"));
            ran += script.len();
        }
        if stopped {
            let again = Demo::start(&demo_dir, &config);
            walk.base = again.base.clone();
            demo = Some(again);
        }
    }
    assert!(ran >= 15, "only {ran} README lines ran: did the README lose its sh blocks?");
}

/// docs/CLI.md holds, per command, exactly what `--help` prints.
#[test]
fn the_cli_reference_is_the_binarys_help() {
    let doc = repo_file("docs/CLI.md");
    let mut checked = 0;
    for section in doc.split("\n## riskstream").skip(1) {
        let (title, rest) = section.split_once('\n').unwrap();
        let Some(body) = rest.split("```text\n").nth(1).and_then(|b| b.split("\n```").next()) else { continue };
        let args: Vec<&str> = title.split_whitespace().collect();
        let out = riskstream().args(&args).arg("--help").output().unwrap();
        assert!(out.status.success(), "riskstream {title} --help");
        let help = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            help.trim_end(),
            body.trim_end(),
            "docs/CLI.md differs from `riskstream{title} --help`: regenerate it with deploy/dev/cli-docs.sh"
        );
        checked += 1;
    }
    assert!(checked >= 15, "docs/CLI.md documents {checked} commands");
}
