//! The deployment examples agree with the product: the Dockerfile builds the
//! toolchain Cargo.toml names, the systemd unit gives the daemon longer than
//! its grace period, the CronJob runs `run` one at a time with its secrets
//! from a Secret and its job file from a ConfigMap.

use crate::common::repo;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The value of `key=` on its own line of a systemd unit.
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} in the unit"))
}

#[test]
fn the_dockerfile_builds_the_rust_version_of_cargo_toml_with_the_production_profile() {
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    let rust_version = manifest["package"]["rust-version"].as_str().unwrap();
    assert!(manifest["profile"]["production"].is_table());
    let docker = read("Dockerfile");
    assert!(
        docker.contains(&format!("ARG RUST_VERSION={rust_version}\n")),
        "{docker}"
    );
    assert!(docker.contains("cargo build --locked --profile production"));
    assert!(docker.contains("target/production/contract-recon"));
    assert!(docker.contains("\nUSER 10001:10001\n"), "a non-root user");
    assert_eq!(
        docker.matches("\nFROM ").count(),
        2,
        "build and runtime stages"
    );
    assert!(read(".dockerignore").lines().any(|l| l == "target"));
}

#[test]
fn the_systemd_unit_outlasts_the_grace_period() {
    let unit = read("deploy/contract-recon.service");
    let exec = unit_value(&unit, "ExecStart");
    assert!(
        exec.contains(" schedule --jobs /etc/contract-recon/jobs"),
        "{exec}"
    );
    let grace: u64 = exec
        .split_once("--grace-secs ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("--grace-secs N");
    let stop: u64 = unit_value(&unit, "TimeoutStopSec").parse().unwrap();
    assert!(stop > grace, "TimeoutStopSec={stop} --grace-secs {grace}");
    assert_eq!(unit_value(&unit, "KillSignal"), "SIGTERM");
    assert_eq!(unit_value(&unit, "Restart"), "on-failure");
    assert!(unit_value(&unit, "EnvironmentFile").starts_with("/etc/contract-recon/"));
    assert_eq!(unit_value(&unit, "User"), "contract-recon");
}

#[test]
fn the_cronjob_runs_one_job_at_a_time_from_a_configmap_and_a_secret() {
    let doc: serde_yaml::Value = serde_yaml::from_str(&read("deploy/k8s-cronjob.yaml")).unwrap();
    assert_eq!(doc["kind"], "CronJob");
    assert_eq!(doc["spec"]["concurrencyPolicy"], "Forbid");
    let pod = &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "run");
    let jobs_mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| args[1].starts_with(m["mountPath"].as_str().unwrap()))
        .expect("the job file is mounted");
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == jobs_mount["name"])
        .unwrap();
    assert!(volume["configMap"]["name"].is_string(), "{volume:?}");
    assert!(container["envFrom"][0]["secretRef"]["name"].is_string());
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
}
