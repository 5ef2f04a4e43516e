//! `spare job` and `spare gpu` on a real device (Mesa lavapipe on CI), through the
//! real `spare` binary re-executed as its own GPU worker.

use std::path::PathBuf;

use crate::support::*;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../compute/examples")
        .join(name)
        .join("job.json")
}

#[test]
fn job_check_accepts_the_examples_and_locates_problems() {
    let spare = Spare::new();
    for name in [
        "vector_add",
        "reduction",
        "matmul",
        "prefix_sum",
        "int_hash",
    ] {
        let run = spare.run(&["job", "check", path_str(&example(name))]).ok();
        assert!(run.stdout.starts_with("OK: "), "{}", run.stdout);
    }
    let dir = spare.home.path();
    std::fs::write(
        dir.join("k.wgsl"),
        "@compute @workgroup_size(2048)\nfn main() {\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("job.json"),
        r#"{"wgsl": "k.wgsl", "entry_point": "main", "workgroups": [1, 1, 1], "bindings": [], "outputs": []}"#,
    )
    .unwrap();
    let run = spare
        .run(&["job", "check", path_str(&dir.join("job.json"))])
        .fails();
    assert!(run.stderr.contains("job refused"), "{}", run.stderr);
    assert!(
        run.stderr.contains("wgsl:2:1:") && run.stderr.contains("2048 invocations"),
        "{}",
        run.stderr
    );

    std::fs::write(dir.join("broken.json"), "{ \"wgsl\": ").unwrap();
    let run = spare
        .run(&["job", "check", path_str(&dir.join("broken.json"))])
        .fails();
    assert!(run.stderr.contains("broken.json:1:"), "{}", run.stderr);
}

#[test]
fn run_local_writes_outputs_that_match_the_expected_ones() {
    let spare = Spare::new();
    let out = spare.path("out");
    let run = spare
        .run(&[
            "job",
            "run-local",
            path_str(&example("prefix_sum")),
            "--out",
            path_str(&out),
        ])
        .ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let file = report["outputs"][0]["file"].as_str().unwrap();
    let expected = std::fs::read(example("prefix_sum").with_file_name("expected-0-0.bin")).unwrap();
    assert_eq!(std::fs::read(file).unwrap(), expected);
    assert_eq!(
        report["outputs"][0]["blake3"].as_str().unwrap(),
        blake3::hash(&expected).to_hex().as_str()
    );
    assert!(
        report["class"]["adapter"]
            .as_str()
            .is_some_and(|a| !a.is_empty())
    );
    assert_eq!(report["class"]["wgpu_version"], "30.0.2");
    assert!(report["gpu_time_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn gpu_info_lists_an_adapter() {
    let spare = Spare::new();
    let run = spare.run(&["gpu", "info", "--json"]).ok();
    let adapters: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        !adapters.as_array().unwrap().is_empty(),
        "no GPU adapter: the tests need one (Mesa lavapipe on CI machines)"
    );
}
