//! The committed JSON Schemas and examples are the contract: they must match the Rust types.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use platform_adapter::{
    events::{InboundType, OutboundType, decode_inbound, decode_outbound},
    schema::{self, Direction},
};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("serialize schema");
    text.push('\n');
    text
}

#[test]
fn committed_schemas_match_the_rust_types() {
    let dir = crate_dir().join("schema");
    let update = std::env::var_os("UPDATE_SCHEMA").is_some();
    let mut stale = Vec::new();
    let mut expected_files = BTreeSet::new();
    for document in schema::documents() {
        let path = dir.join(document.relative_path());
        expected_files.insert(path.clone());
        let generated = pretty(&document.schema);
        let committed = fs::read_to_string(&path).unwrap_or_default();
        // Compared as JSON values: key order depends on whether a crate elsewhere in the
        // build turned on serde_json's `preserve_order`, the content does not.
        let same = serde_json::from_str::<serde_json::Value>(&committed)
            .is_ok_and(|c| serde_json::to_value(&document.schema).is_ok_and(|g| c == g));
        if !same {
            if update {
                fs::create_dir_all(path.parent().expect("parent")).expect("create schema dir");
                fs::write(&path, generated).expect("write schema");
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    for direction in ["inbound", "outbound"] {
        for entry in fs::read_dir(dir.join(direction)).expect("schema dir") {
            let path = entry.expect("entry").path();
            if !expected_files.contains(&path) {
                if update {
                    fs::remove_file(&path).expect("remove stale schema");
                } else {
                    stale.push(format!("{} (no such type)", path.display()));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "JSON Schema files differ from the Rust types:\n  {}\nRegenerate them with:\n  \
         UPDATE_SCHEMA=1 cargo test -p platform-adapter --test contract\nand commit the result.",
        stale.join("\n  ")
    );
}

fn example_path(direction: &str, event_type: &str) -> PathBuf {
    crate_dir()
        .join("examples")
        .join(direction)
        .join(format!("{event_type}.json"))
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn committed_schema(direction: &str, event_type: &str) -> serde_json::Value {
    read_json(
        &crate_dir()
            .join("schema")
            .join(direction)
            .join(format!("{event_type}.schema.json")),
    )
}

#[test]
fn every_type_has_an_example_that_the_schema_and_the_types_accept() {
    let mut checked = 0;
    for document in schema::documents() {
        let direction = document.direction.as_str();
        let path = example_path(direction, document.event_type);
        let example = read_json(&path);
        let validator =
            jsonschema::validator_for(&committed_schema(direction, document.event_type))
                .expect("schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(&example)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        let bytes = fs::read(&path).expect("read example");
        match document.direction {
            Direction::Inbound => {
                let event =
                    decode_inbound(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(event.routing_key(), document.event_type);
                let again = decode_inbound(&event.encode().expect("encode")).expect("round trip");
                assert_eq!(again, event);
            }
            Direction::Outbound => {
                let event =
                    decode_outbound(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(event.routing_key(), document.event_type);
                let again = decode_outbound(&event.encode().expect("encode")).expect("round trip");
                assert_eq!(again, event);
            }
        }
        checked += 1;
    }
    assert_eq!(checked, InboundType::ALL.len() + OutboundType::ALL.len());
}

#[test]
fn no_example_names_an_unknown_type() {
    let known: BTreeSet<String> = schema::documents()
        .iter()
        .map(|d| format!("{}/{}.json", d.direction.as_str(), d.event_type))
        .collect();
    for direction in ["inbound", "outbound"] {
        for entry in
            fs::read_dir(crate_dir().join("examples").join(direction)).expect("examples dir")
        {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            assert!(
                known.contains(&format!("{direction}/{name}")),
                "stray example {direction}/{name}"
            );
        }
    }
}

#[test]
fn the_readme_shows_every_example_as_committed() {
    let readme = fs::read_to_string(crate_dir().join("README.md")).expect("README.md");
    for document in schema::documents() {
        let direction = document.direction.as_str();
        let example =
            fs::read_to_string(example_path(direction, document.event_type)).expect("example");
        assert!(
            readme.contains(&format!("### `{}`", document.event_type))
                && readme.contains(&format!("```json\n{example}```")),
            "README.md lacks the current example of {direction} {}",
            document.event_type
        );
    }
}
