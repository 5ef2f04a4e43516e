//! `--json` means JSON on stdout in every case: results, empty ledgers, problems and
//! failures alike.

use crate::support::*;

#[track_caller]
fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", run.stdout, run.stderr))
}

fn example(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../compute/examples")
        .join(name)
        .join("job.json")
}

#[test]
fn earnings_on_a_fresh_install_is_json_with_nothing_earned() {
    let spare = Spare::new();
    let run = spare.run(&["earnings", "--json"]).ok();
    let report = json(&run);
    assert_eq!(report["all_time_earned_micro"], 0, "{report}");
    assert_eq!(report["rows"], serde_json::json!([]), "{report}");
    assert!(
        report["ledger"]
            .as_str()
            .unwrap()
            .ends_with("ledger.sqlite3"),
        "{report}"
    );
    assert!(!spare.path(".local/share/spare/ledger.sqlite3").exists());
}

#[test]
fn id_and_ticket_say_what_they_are_in_json() {
    let spare = Spare::new();
    let key = spare.path("node.key");
    let first = json(
        &spare
            .run(&["--key-file", path_str(&key), "id", "--json"])
            .ok(),
    );
    assert_eq!(first["created"], true, "{first}");
    assert!(
        first["key_store"].as_str().unwrap().contains("node.key"),
        "{first}"
    );
    let again = json(
        &spare
            .run(&["--key-file", path_str(&key), "id", "--json"])
            .ok(),
    );
    assert_eq!(again["created"], false);
    assert_eq!(again["node_id"], first["node_id"]);

    let ticket = json(
        &spare
            .run(&["--key-file", path_str(&key), "ticket", "--json"])
            .ok(),
    );
    assert_eq!(ticket["node_id"], first["node_id"], "{ticket}");
    assert_eq!(ticket["from"], "config");
    assert!(ticket["ticket"].as_str().unwrap().starts_with("spare1"));
    assert!(
        !ticket["addresses"].as_array().unwrap().is_empty(),
        "{ticket}"
    );
}

#[test]
fn config_check_lists_its_problems_in_json() {
    let spare = Spare::new();
    let missing = json(&spare.run(&["config", "check", "--json"]).ok());
    assert_eq!(missing["exists"], false);
    assert_eq!(missing["valid"], true);

    let bad = spare.path("bad.toml");
    std::fs::write(
        &bad,
        "[gpu]\nmax_job_memory_mb = \"lots\"\n[relay]\nprot = 4433\n",
    )
    .unwrap();
    let run = spare
        .run(&["config", "check", path_str(&bad), "--json"])
        .fails();
    let report = json(&run);
    assert_eq!(report["valid"], false);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{report}");
    assert_eq!(problems[0]["line"], 2, "{report}");
    assert_eq!(problems[1]["line"], 4, "{report}");
}

#[test]
fn job_check_says_admitted_or_every_located_problem_in_json() {
    let spare = Spare::new();
    let good = json(
        &spare
            .run(&["job", "check", path_str(&example("vector_add")), "--json"])
            .ok(),
    );
    assert_eq!(good["admitted"], true, "{good}");
    assert!(good["workgroups"].as_u64().unwrap() > 0);

    let dir = spare.path("job");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("job.json");
    std::fs::write(
        &manifest,
        r#"{"source": "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n@compute @workgroup_size(1)\nfn main() {\n    var big: array<u32, 8192>;\n    big[out[1]] = 1u;\n    out[0] = big[out[2]];\n}\n",
            "entry_point": "main", "workgroups": [1, 1, 1],
            "bindings": [{"binding": 0, "kind": "storage_read_write", "zero": 64}], "outputs": [0]}"#,
    )
    .unwrap();
    let bad = json(
        &spare
            .run(&["job", "check", path_str(&manifest), "--json"])
            .fails(),
    );
    assert_eq!(bad["admitted"], false, "{bad}");
    let problem = &bad["problems"][0];
    assert_eq!(problem["line"], 4, "{bad}");
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("private memory"),
        "{bad}"
    );
}

#[test]
fn a_failure_with_json_is_json_too() {
    let spare = Spare::new();
    // No node runs: status fails, and says why as JSON on stdout.
    for args in [
        &["status", "--json"][..],
        &["pause", "gpu", "--json"][..],
        &["resume", "--json"][..],
    ] {
        let run = spare.run(args).fails();
        let answer = json(&run);
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{args:?}: {answer}"
        );
        assert!(!run.stderr.is_empty(), "{args:?}");
    }
}
