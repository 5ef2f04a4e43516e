//! `spare config`: the example is valid, and bad files are reported with the key, the
//! line and what is allowed.

use crate::support::*;

#[test]
fn example_config_checks_clean() {
    let spare = Spare::new();
    let example = spare.run(&["config", "example"]).ok().stdout;
    let path = spare.path("example.toml");
    std::fs::write(&path, example).unwrap();
    let run = spare.run(&["config", "check", path_str(&path)]).ok();
    assert!(run.stdout.contains("is valid"), "{}", run.stdout);
}

#[test]
fn missing_default_config_means_defaults() {
    let spare = Spare::new();
    let run = spare.run(&["config", "check"]).ok();
    assert!(run.stdout.contains("uses the defaults"), "{}", run.stdout);
    let path = spare.run(&["config", "path"]).ok().stdout;
    assert!(path.trim().ends_with("spare/config.toml"), "{path}");
    assert!(
        path.trim().starts_with(path_str(spare.home.path())),
        "{path}"
    );
}

#[test]
fn bad_config_lists_every_problem_with_key_line_and_allowed_values() {
    let spare = Spare::new();
    let path = spare.path("config.toml");
    std::fs::write(
        &path,
        "# mine\n[gpu]\nmax_duty_cycle_percent = 0\nmax_temperature_c = 120\n\n[lending]\nidle_minutes = 2000\n",
    )
    .unwrap();
    let run = spare.run(&["config", "check", path_str(&path)]).fails();
    let expected = [
        "line 3: gpu.max_duty_cycle_percent: 0 is out of range: allowed 1 to 100 percent",
        "line 4: gpu.max_temperature_c: 120 is out of range: allowed 50 to 100",
        "line 7: lending.idle_minutes: 2000 is out of range: allowed 1 to 1440 minutes",
    ];
    for line in expected {
        assert!(
            run.stderr.contains(line),
            "missing {line:?} in:\n{}",
            run.stderr
        );
    }
}

#[test]
fn unknown_key_and_wrong_type_are_located() {
    let spare = Spare::new();
    let path = spare.path("config.toml");
    std::fs::write(&path, "[bandwidth]\nenabled = true\nmonthly_quota = 5\n").unwrap();
    let run = spare.run(&["config", "check", path_str(&path)]).fails();
    assert!(
        run.stderr
            .contains("line 3: bandwidth.monthly_quota: unknown field"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("monthly_quota_gb"), "{}", run.stderr);

    std::fs::write(&path, "[gpu]\nenabled = \"sometimes\"\n").unwrap();
    let run = spare.run(&["config", "check", path_str(&path)]).fails();
    assert!(
        run.stderr.contains("line 2: gpu.enabled: wrong type"),
        "{}",
        run.stderr
    );
}

#[test]
fn commands_refuse_a_bad_config_instead_of_guessing() {
    let spare = Spare::new();
    let path = spare.path("config.toml");
    std::fs::write(&path, "[lending]\nidle_minutes = 0\n").unwrap();
    let run = spare
        .run(&["--config", path_str(&path), "earnings"])
        .fails();
    assert!(
        run.stderr.contains("lending.idle_minutes"),
        "{}",
        run.stderr
    );
    let run = spare
        .run(&["--config", path_str(&spare.path("nope.toml")), "earnings"])
        .fails();
    assert!(run.stderr.contains("nope.toml"), "{}", run.stderr);
}
