//! The `.avsc` files: they parse, cover every type, and their fingerprints are
//! distinct, stable and pinned.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use apache_avro::Schema;
use riskstream_schemas::avro::{canonical_form, schema_fingerprint, Codec, Fingerprint, HISTORICAL_SCHEMAS};
use riskstream_schemas::{AlertKind, EVENT_TYPES};

/// The crate's directory as the test runner reports it at run time: a binary built
/// from another checkout sharing the target dir must not read that checkout's files.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

/// (file stem, JSON) of every file in `schemas/avro/`.
fn avsc_files() -> BTreeMap<String, String> {
    let dir = manifest_dir().join("avro");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "avsc"))
        .map(|path| {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, std::fs::read_to_string(&path).unwrap())
        })
        .collect()
}

#[test]
fn every_avsc_parses_as_a_documented_riskstream_record() {
    let files = avsc_files();
    assert_eq!(files.len(), 10);
    for (stem, json) in &files {
        let Schema::Record(record) = Schema::parse_str(json).unwrap() else { panic!("{stem} is not a record") };
        assert_eq!(record.name.name, *stem);
        assert_eq!(record.name.namespace.as_deref(), Some("riskstream.v1"));
        assert!(record.doc.as_deref().is_some_and(|d| !d.is_empty()), "{stem} has no doc");
        if stem == "Alert" {
            continue;
        }
        let names: Vec<&str> = record.fields.iter().take(2).map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["event_id", "ts"], "{stem}");
        assert_eq!(record.fields[0].default, Some(serde_json::Value::Null), "{stem}");
        assert!(matches!(record.fields[1].schema, Schema::TimestampMicros), "{stem}");
    }
}

#[test]
fn every_event_type_and_the_alert_have_a_schema() {
    let codec = Codec::new();
    let expected: BTreeSet<&str> = EVENT_TYPES.iter().copied().chain(["Alert"]).collect();
    let files = avsc_files();
    assert_eq!(files.keys().map(String::as_str).collect::<BTreeSet<_>>(), expected);
    let published: Vec<&str> = codec.schemas().map(|(name, _)| name).collect();
    assert_eq!(published, EVENT_TYPES.iter().copied().chain(["Alert"]).collect::<Vec<_>>());
    for (name, json) in codec.schemas() {
        assert_eq!(json, files[name], "{name}: the embedded schema differs from the file");
        assert_eq!(codec.schema_json(name), Some(json));
        assert_eq!(codec.fingerprint(name), Some(schema_fingerprint(json).unwrap()));
    }
    assert_eq!(codec.fingerprint("NoSuchEvent"), None);
    assert_eq!(codec.schema_json("NoSuchEvent"), None);
}

#[test]
fn fingerprints_are_distinct_and_stable() {
    let (a, b) = (Codec::new(), Codec::new());
    let fingerprints: Vec<Fingerprint> = a.schemas().map(|(name, _)| a.fingerprint(name).unwrap()).collect();
    assert_eq!(fingerprints.iter().collect::<BTreeSet<_>>().len(), 10);
    for (name, _) in a.schemas() {
        assert_eq!(a.fingerprint(name), b.fingerprint(name), "{name}");
    }
    assert_eq!(a.clone().fingerprint("Alert"), a.fingerprint("Alert"));
}

/// Stored records name their schema by fingerprint. If one of these changes, a schema's
/// canonical form changed (a field added, removed, renamed, retyped or moved; docs do
/// not count): keep the old schema verbatim in `avro/history/` and list it in
/// `HISTORICAL_SCHEMAS` so stored data stays readable, pin its fingerprint in
/// `historical_fingerprints_are_pinned`, then update the pin here.
#[test]
fn fingerprints_are_pinned() {
    let codec = Codec::new();
    let pinned: [(&str, Fingerprint); 10] = [
        ("AccountOpened", 0x49ed_5534_8d10_cf38), // v2: holder_name and holder_email appended
        ("SecurityListed", 0x57e9_e63d_2657_62e6),
        ("CashMovement", 0x5017_3b94_5aa1_5a08),
        ("TradeExecuted", 0x7073_8e1f_60f3_5de1),
        ("MarketTick", 0x7a1e_610a_0843_198c),
        ("TargetAllocationSet", 0x9cf7_7160_a488_71f3),
        ("RiskLimitsSet", 0xaa0c_2848_a1c0_3d44), // v2: seven optional limits appended
        ("AlertPreferencesSet", 0x784e_cc9d_b3b9_2cd7),
        ("PriceBatch", 0xeaa5_4ced_11d3_ce9c), // v1 plus `times` (empty-map default)
        ("Alert", 0x7022_19d9_45fe_b15e),      // v3: AlertKind symbols and `details` appended
    ];
    let actual: Vec<(&str, String)> =
        codec.schemas().map(|(name, _)| (name, format!("{:#018x}", codec.fingerprint(name).unwrap()))).collect();
    let expected: Vec<(&str, String)> = pinned.iter().map(|&(name, fp)| (name, format!("{fp:#018x}"))).collect();
    assert_eq!(actual, expected);
}

/// The superseded schemas the codec still reads: their fingerprints are in stored records
/// and must never change (the files under `avro/history/` are never edited).
#[test]
fn historical_fingerprints_are_pinned() {
    let codec = Codec::new();
    let pinned: [(&str, Fingerprint); 4] = [
        ("RiskLimitsSet", 0x6950_e468_391d_1720), // v1
        ("Alert", 0x61a9_92fb_f86f_3f33),         // v1
        ("Alert", 0x290e_ab3b_48a7_063a),         // v2
        ("AccountOpened", 0x1578_d5e9_9f6d_be6f), // v1
    ];
    let actual: Vec<(&str, String)> = HISTORICAL_SCHEMAS
        .iter()
        .map(|&(name, json)| (name, format!("{:#018x}", schema_fingerprint(json).unwrap())))
        .collect();
    let expected: Vec<(&str, String)> = pinned.iter().map(|&(name, fp)| (name, format!("{fp:#018x}"))).collect();
    assert_eq!(actual, expected);
    for (name, fingerprint) in pinned {
        assert_eq!(codec.writer_type(fingerprint), Some(name), "{fingerprint:#018x}");
        assert_ne!(codec.fingerprint(name), Some(fingerprint), "{name}: a historical schema is not the current one");
    }
}

#[test]
fn historical_schemas_are_the_files_under_history() {
    let dir = manifest_dir().join("avro").join("history");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["AccountOpened.v1.avsc", "Alert.v1.avsc", "Alert.v2.avsc", "RiskLimitsSet.v1.avsc"]);
    let listed = ["RiskLimitsSet.v1.avsc", "Alert.v1.avsc", "Alert.v2.avsc", "AccountOpened.v1.avsc"];
    for ((name, json), file_name) in HISTORICAL_SCHEMAS.into_iter().zip(listed) {
        let file = std::fs::read_to_string(dir.join(file_name)).unwrap();
        assert_eq!(json, file, "{file_name}: the embedded historical schema differs from the file");
        let Schema::Record(record) = Schema::parse_str(json).unwrap() else { panic!("{name} is not a record") };
        assert_eq!(record.name.name, name);
    }
}

/// The Avro enum's symbols are the Rust kinds, in `AlertKind::ALL` order, and the JSON
/// (serde) names are the same symbols.
#[test]
fn alert_kind_symbols_match_the_rust_enum() {
    let Schema::Record(record) = Schema::parse_str(Codec::new().schema_json("Alert").unwrap()).unwrap() else {
        panic!("Alert is not a record")
    };
    let kind = record.fields.iter().find(|f| f.name == "kind").unwrap();
    let Schema::Enum(e) = &kind.schema else { panic!("kind is not an enum: {:?}", kind.schema) };
    let rust: Vec<&str> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(e.symbols, rust);
    // No reader default (docs/EVENTS.md says why).
    assert_eq!(e.default, None);
    for k in AlertKind::ALL {
        assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
    }
    // v2 and v3 only appended: the older symbols keep their positions.
    let older: Vec<usize> = HISTORICAL_SCHEMAS
        .iter()
        .filter(|(name, _)| *name == "Alert")
        .map(|&(_, json)| {
            let Schema::Record(old) = Schema::parse_str(json).unwrap() else { panic!() };
            let Schema::Enum(old_kind) = &old.fields[1].schema else { panic!() };
            assert_eq!(old_kind.symbols, rust[..old_kind.symbols.len()]);
            old_kind.symbols.len()
        })
        .collect();
    assert_eq!(older, [3, 12]);
    assert_eq!(rust.len(), 14);
}

/// v3's `details`: appended last, optional text with a null default, so v1 and v2 alerts
/// read with it unset and older readers skip it.
#[test]
fn alert_details_is_an_appended_optional_string() {
    let Schema::Record(record) = Schema::parse_str(Codec::new().schema_json("Alert").unwrap()).unwrap() else {
        panic!("Alert is not a record")
    };
    let Schema::Record(v2) = Schema::parse_str(HISTORICAL_SCHEMAS[2].1).unwrap() else { panic!() };
    let v2_names: Vec<&str> = v2.fields.iter().map(|f| f.name.as_str()).collect();
    let names: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names[..v2_names.len()], v2_names);
    assert_eq!(names[v2_names.len()..], ["details"]);
    let details = record.fields.last().unwrap();
    let Schema::Union(union) = &details.schema else { panic!("details is not a union: {:?}", details.schema) };
    assert_eq!(union.variants(), [Schema::Null, Schema::String]);
    assert_eq!(details.default, Some(serde_json::Value::Null));
}

/// v4's personal fields: appended to `AccountOpened` v1, optional strings with a null
/// default, so v1 records read with them unset and a v1 reader skips them.
#[test]
fn account_holder_fields_are_appended_optional_strings() {
    let Schema::Record(record) = Schema::parse_str(Codec::new().schema_json("AccountOpened").unwrap()).unwrap() else {
        panic!("AccountOpened is not a record")
    };
    let Schema::Record(v1) = Schema::parse_str(HISTORICAL_SCHEMAS[3].1).unwrap() else { panic!() };
    assert_eq!(v1.name.name, "AccountOpened");
    let v1_names: Vec<&str> = v1.fields.iter().map(|f| f.name.as_str()).collect();
    let names: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names[..v1_names.len()], v1_names);
    assert_eq!(names[v1_names.len()..], ["holder_name", "holder_email"]);
    for field in &record.fields[v1_names.len()..] {
        let Schema::Union(union) = &field.schema else { panic!("{} is not a union: {:?}", field.name, field.schema) };
        assert_eq!(union.variants(), [Schema::Null, Schema::String]);
        assert_eq!(field.default, Some(serde_json::Value::Null));
    }
    let personal: Vec<(&str, &str)> = riskstream_schemas::PERSONAL_FIELDS.to_vec();
    assert_eq!(personal, [("AccountOpened", "holder_name"), ("AccountOpened", "holder_email")]);
}

/// The Avro project's vectors (share/test/data/schema-tests.txt): input, canonical form,
/// and fingerprint (signed there).
const SPEC_VECTORS: [(&str, &str, i64); 34] = [
    (r#""null""#, r#""null""#, 7195948357588979594),
    (r#"{"type":"null"}"#, r#""null""#, 7195948357588979594),
    (r#""boolean""#, r#""boolean""#, -6970731678124411036),
    (r#"{"type":"boolean"}"#, r#""boolean""#, -6970731678124411036),
    (r#""int""#, r#""int""#, 8247732601305521295),
    (r#"{"type":"int"}"#, r#""int""#, 8247732601305521295),
    (r#""long""#, r#""long""#, -3434872931120570953),
    (r#"{"type":"long"}"#, r#""long""#, -3434872931120570953),
    (r#""float""#, r#""float""#, 5583340709985441680),
    (r#"{"type":"float"}"#, r#""float""#, 5583340709985441680),
    (r#""double""#, r#""double""#, -8181574048448539266),
    (r#"{"type":"double"}"#, r#""double""#, -8181574048448539266),
    (r#""bytes""#, r#""bytes""#, 5746618253357095269),
    (r#"{"type":"bytes"}"#, r#""bytes""#, 5746618253357095269),
    (r#""string""#, r#""string""#, -8142146995180207161),
    (r#"{"type":"string"}"#, r#""string""#, -8142146995180207161),
    (r#"[  ]"#, r#"[]"#, -1241056759729112623),
    (r#"[ "int"  ]"#, r#"["int"]"#, -5232228896498058493),
    (r#"[ "int" , {"type":"boolean"} ]"#, r#"["int","boolean"]"#, 5392556393470105090),
    (
        r#"{"fields":[], "type":"record", "name":"foo"}"#,
        r#"{"name":"foo","type":"record","fields":[]}"#,
        -4824392279771201922,
    ),
    (
        r#"{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}"#,
        r#"{"name":"x.y.foo","type":"record","fields":[]}"#,
        5916914534497305771,
    ),
    (
        r#"{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}"#,
        r#"{"name":"a.b.foo","type":"record","fields":[]}"#,
        -4616218487480524110,
    ),
    (
        r#"{"fields":[], "type":"record", "name":"foo", "doc":"Useful info"}"#,
        r#"{"name":"foo","type":"record","fields":[]}"#,
        -4824392279771201922,
    ),
    (
        r#"{"fields":[], "type":"record", "name":"foo", "aliases":["foo","bar"]}"#,
        r#"{"name":"foo","type":"record","fields":[]}"#,
        -4824392279771201922,
    ),
    (
        r#"{"fields":[], "type":"record", "name":"foo", "doc":"foo", "aliases":["foo","bar"]}"#,
        r#"{"name":"foo","type":"record","fields":[]}"#,
        -4824392279771201922,
    ),
    (
        r#"{"fields":[{"type":{"type":"boolean"}, "name":"f1"}], "type":"record", "name":"foo"}"#,
        r#"{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}"#,
        7843277075252814651,
    ),
    (
        r#"{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":true},
{"order":"descending","name":"f2","doc":"Hello","type":"int"}],"type":"record", "name":"foo"}"#,
        r#"{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}"#,
        -4860222112080293046,
    ),
    (
        r#"{"type":"enum", "name":"foo", "symbols":["A1"]}"#,
        r#"{"name":"foo","type":"enum","symbols":["A1"]}"#,
        -6342190197741309591,
    ),
    (
        r#"{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}"#,
        r#"{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}"#,
        -4448647247586288245,
    ),
    (r#"{"name":"foo","type":"fixed","size":15}"#, r#"{"name":"foo","type":"fixed","size":15}"#, 1756455273707447556),
    (
        r#"{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}"#,
        r#"{"name":"x.y.z.foo","type":"fixed","size":32}"#,
        -3064184465700546786,
    ),
    (r#"{ "items":{"type":"null"}, "type":"array"}"#, r#"{"type":"array","items":"null"}"#, -589620603366471059),
    (r#"{ "values":"string", "type":"map"}"#, r#"{"type":"map","values":"string"}"#, -8732877298790414990),
    (
        r#"{"name":"PigValue","type":"record",
   "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}"#,
        r#"{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}"#,
        -1759257747318642341,
    ),
];

#[test]
fn fingerprints_are_crc_64_avro_of_the_spec_canonical_form() {
    for (i, (input, canonical, fingerprint)) in SPEC_VECTORS.iter().enumerate() {
        assert_eq!(canonical_form(input).unwrap(), *canonical, "vector {i:03}");
        assert_eq!(schema_fingerprint(input).unwrap(), *fingerprint as u64, "vector {i:03}");
    }
}

#[test]
fn canonical_forms_drop_docs_defaults_and_logical_types() {
    let codec = Codec::new();
    let form = canonical_form(codec.schema_json("RiskLimitsSet").unwrap()).unwrap();
    assert_eq!(
        form,
        r#"{"name":"riskstream.v1.RiskLimitsSet","type":"record","fields":[{"name":"event_id","type":["null","string"]},{"name":"ts","type":"long"},{"name":"account_id","type":"string"},{"name":"user_id","type":"string"},{"name":"max_position_weight","type":["null","bytes"]},{"name":"max_sector_weight","type":["null","bytes"]},{"name":"max_asset_class_weight","type":["null","bytes"]},{"name":"max_var","type":["null","bytes"]},{"name":"max_cvar","type":["null","bytes"]},{"name":"max_drawdown","type":["null","bytes"]},{"name":"max_daily_loss","type":["null","bytes"]},{"name":"max_gross_leverage","type":["null","bytes"]}]}"#
    );
    let form = canonical_form(codec.schema_json("AccountOpened").unwrap()).unwrap();
    assert!(
        form.contains(
            r#"{"name":"riskstream.v1.TaxStatus","type":"enum","symbols":["taxable","traditional_ira","roth_ira"]}"#
        ),
        "{form}"
    );
    // apache-avro 0.21's own form keeps precision and scale, so it is not used.
    let theirs = Schema::parse_str(codec.schema_json("RiskLimitsSet").unwrap()).unwrap().canonical_form();
    assert!(theirs.contains("precision"), "{theirs}");
}

#[test]
fn the_codec_can_be_shared_between_threads() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Codec>();
    let codec = Codec::new();
    let handle = std::thread::spawn(move || codec.fingerprint("Alert"));
    assert_eq!(handle.join().unwrap(), Codec::new().fingerprint("Alert"));
}
