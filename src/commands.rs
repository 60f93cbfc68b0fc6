//! The command line's commands, behind `main.rs`'s argument parsing: each
//! prints what a person needs and returns the process exit code.
//!
//! Exit codes: 0 success, 1 the run failed (or an applied correction failed:
//! rejected, or still pending after retries), 2 invalid usage or job file, 3
//! drift found with `--fail-on-drift`, 4 another run of the job holds its lease.

use crate::erp::extract::GuardError;
use crate::error_chain::{anyhow_chain, error_chain};
use crate::ingest::IngestMode;
use crate::job::{load_job, Job};
use crate::lease::LeaseError;
use crate::runner::{self, RunOptions};
use crate::sandbox::{self, Dataset, Sandbox, SandboxConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit code of a run that found drift with `--fail-on-drift`.
pub const EXIT_DRIFT: u8 = 3;
/// Exit code of a run refused because another run of the job holds its lease.
pub const EXIT_LEASE_HELD: u8 = 4;
/// Exit code of a run refused by the `[erp.extract]` guard (a broken export?).
pub const EXIT_EXTRACT_GUARD: u8 = 5;

/// `validate`: checks job files, printing every problem as `file: key: reason`;
/// `online`: also the SpotDraft credentials and the metadata fields the job
/// names (see [`runner::check_online`]).
pub async fn validate(paths: &[PathBuf], online: bool) -> ExitCode {
    let mut invalid = false;
    for path in paths {
        match load_job(path) {
            Ok(job) if online => match runner::check_online(&job).await {
                Ok(problems) if problems.is_empty() => {
                    println!("{}: ok online (job {:?})", path.display(), job.name)
                }
                Ok(problems) => {
                    invalid = true;
                    for (key, reason) in problems {
                        println!("{}: {key}: {reason}", path.display());
                    }
                }
                Err(e) => {
                    invalid = true;
                    println!("{}: spotdraft: {}", path.display(), anyhow_chain(&e));
                }
            },
            Ok(job) => println!("{}: ok (job {:?})", path.display(), job.name),
            Err(problems) => {
                invalid = true;
                for p in &problems.0 {
                    println!("{p}");
                }
            }
        }
    }
    if invalid {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// When `run` exits with [`EXIT_DRIFT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOnDrift {
    /// Any drift row, acknowledged or not (plain `--fail-on-drift`).
    Any,
    /// Drift first seen in this run (`--fail-on-drift=new`): a nightly alert.
    New,
}

impl FailOnDrift {
    /// True when `outcome` should exit with [`EXIT_DRIFT`].
    pub fn fails(self, outcome: &runner::RunOutcome) -> bool {
        match self {
            FailOnDrift::Any => outcome.drift_total() > 0,
            FailOnDrift::New => outcome.drift_new() > 0,
        }
    }
}

/// What `run` was asked for.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// The job file.
    pub job: PathBuf,
    /// Exit with 3 when drift (or new drift) is found.
    pub fail_on_drift: Option<FailOnDrift>,
    /// Full, incremental or automatic walk.
    pub mode: IngestMode,
    /// Take the job's lease from a holder known to be gone.
    pub break_lease: bool,
    /// Overrides `[apply] mode` (`--apply`, `--plan-only`).
    pub apply_mode: Option<crate::job::ApplyMode>,
    /// Apply over `[apply] max_actions_per_run` (`--force`).
    pub force_apply: bool,
    /// Run on an extract the `[erp.extract]` guard refuses (`--accept-extract`).
    pub accept_extract: bool,
    /// A targeted run of these contracts (`--contracts 12,34`: SpotDraft's
    /// integer contract ids) instead of a nightly run.
    pub contracts: Vec<i64>,
}

/// `run`: one run of a job file.
pub async fn run(request: RunRequest) -> ExitCode {
    let Some(job) = load_or_report(&request.job) else {
        return ExitCode::from(2);
    };
    let opts = RunOptions {
        mode: request.mode,
        break_lease: request.break_lease,
        apply_mode: request.apply_mode,
        force_apply: request.force_apply,
        accept_extract: request.accept_extract,
        ..RunOptions::default()
    };
    if request.contracts.is_empty() {
        return run_loaded(&job, opts, request.fail_on_drift).await;
    }
    let targets = runner::TargetSet {
        contracts: request
            .contracts
            .iter()
            .map(|id| (*id, runner::TargetHint::Changed))
            .collect(),
    };
    let outcome = runner::run_targeted(&job, &targets, opts).await;
    report_outcome(&job, outcome, request.fail_on_drift)
}

/// `apply`: applies the reviewed plan of `run_id`, as written, under the job's lease.
pub async fn apply(job: &Path, run_id: &str, approved_by: Option<String>, force: bool) -> ExitCode {
    let Some(job) = load_or_report(job) else {
        return ExitCode::from(2);
    };
    let request = runner::ApplyPlanRequest {
        run_id: run_id.to_string(),
        approved_by,
        force,
        ..Default::default()
    };
    match runner::apply_plan(&job, request).await {
        Ok(applied) => {
            println!(
                "job {} plan of run {} (apply {}):",
                job.name, run_id, applied.apply_id
            );
            print!("{}", runner::render_apply(&applied.summary));
            if let Some(dir) = &applied.results_dir {
                println!("results: {dir}");
            }
            if applied.summary.failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            if let Some(held @ LeaseError::Held { .. }) = e.downcast_ref::<LeaseError>() {
                eprintln!("error: {held}");
                return ExitCode::from(EXIT_LEASE_HELD);
            }
            eprintln!("error: {}", anyhow_chain(&e));
            ExitCode::from(1)
        }
    }
}

/// What `backfill` was asked for, as typed.
#[derive(Debug, Clone)]
pub struct BackfillArgs {
    /// The job file.
    pub job: PathBuf,
    /// `--from` (YYYY-MM-DD).
    pub from: String,
    /// `--to` (YYYY-MM-DD).
    pub to: String,
    /// `--by`: the field the days range over.
    pub by: crate::ingest::WindowField,
    /// `--window` (`30d`, `12h`).
    pub window: String,
    /// `--resume`.
    pub resume: bool,
    /// `--break-lease`.
    pub break_lease: bool,
    /// `--apply` / `--plan-only`.
    pub apply_mode: Option<crate::job::ApplyMode>,
}

/// `backfill`: re-reconciles the contracts of a historical range.
pub async fn backfill(args: BackfillArgs) -> ExitCode {
    use crate::ingest::backfill::{parse_date, parse_window, BackfillRange};
    let parsed = (|| {
        let range = BackfillRange {
            from: parse_date("--from", &args.from)?,
            to: parse_date("--to", &args.to)?,
            by: args.by,
        };
        Ok::<_, crate::ingest::backfill::BackfillError>((range, parse_window(&args.window)?))
    })();
    let (range, window) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if range.from > range.to {
        eprintln!("error: --from {} is after --to {}", range.from, range.to);
        return ExitCode::from(2);
    }
    let Some(job) = load_or_report(&args.job) else {
        return ExitCode::from(2);
    };
    let request = runner::BackfillRequest {
        range,
        window,
        resume: args.resume,
    };
    let opts = RunOptions {
        break_lease: args.break_lease,
        apply_mode: args.apply_mode,
        ..RunOptions::default()
    };
    let outcome = runner::run_backfill(&job, &request, opts).await;
    report_outcome(&job, outcome, None)
}

/// `schedule`: runs the scheduled jobs of `config.jobs_dir` until SIGTERM or
/// SIGINT; SIGHUP reloads the folder.
pub async fn schedule(config: crate::schedule::driver::DaemonConfig) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("error: cannot listen for signals");
        return ExitCode::from(1);
    };
    let (reload_tx, reload) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the job files");
            let _ = reload_tx.try_send(());
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
        }
    };
    match crate::schedule::driver::run(config, reload, shutdown).await {
        Ok(stopped) => {
            println!(
                "stopped: {} runs finished within the grace period, {} dropped (resumable)",
                stopped.finished_in_grace, stopped.dropped
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", anyhow_chain(&e));
            ExitCode::from(1)
        }
    }
}

/// `runs`: the job's run history, newest first, at most `limit` runs.
pub async fn runs(job: &Path, limit: usize) -> ExitCode {
    let Some(job) = load_or_report(job) else {
        return ExitCode::from(2);
    };
    let output = match runner::job_output(&job) {
        Ok(output) => output,
        Err(e) => {
            eprintln!("error: {}", anyhow_chain(&e));
            return ExitCode::from(1);
        }
    };
    match runner::history::read_records(output.store.as_ref(), &output.path, &job.name, limit).await
    {
        Ok(records) if records.is_empty() => {
            println!("job {}: no runs recorded yet", job.name);
            ExitCode::SUCCESS
        }
        Ok(records) => {
            print!("{}", runner::history::render_records(&records));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", anyhow_chain(&e));
            ExitCode::from(1)
        }
    }
}

/// `demo`: runs the demo job (by default `jobs/demo.toml`) against the embedded
/// sandbox, optionally writing to `output` instead of the job's folder. With
/// `change`, the sandbox edits one contract first ([`sandbox::demo_change`]),
/// so a second run shows new and resolved drift.
pub async fn demo(job: &Path, output: Option<PathBuf>, change: bool) -> ExitCode {
    let path = locate_demo_job(job);
    let Some(mut job) = load_or_report(&path) else {
        return ExitCode::from(2);
    };
    if let Some(dir) = output {
        match std::fs::create_dir_all(&dir).and_then(|_| dir.canonicalize()) {
            Ok(dir) => job.output.url = dir.display().to_string(),
            Err(e) => {
                eprintln!("error: --output {}: {e}", dir.display());
                return ExitCode::from(2);
            }
        }
    }
    let mut opts = RunOptions::default();
    if change {
        opts.edit_sandbox = Some(std::sync::Arc::new(|state: &sandbox::StateHandle| {
            for line in sandbox::demo_change(state) {
                println!("demo --change: {line}");
            }
        }));
    }
    run_loaded(&job, opts, None).await
}

/// `fixtures gen`: writes a deterministic dataset.
pub async fn generate_fixtures(opts: sandbox::gen::GenOptions) -> ExitCode {
    let out = opts.out.clone();
    match tokio::task::spawn_blocking(move || sandbox::gen::generate(&opts)).await {
        Ok(Ok(summary)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).unwrap_or_default()
            );
            println!("wrote {}", out.display());
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: fixture generation stopped: {e}");
            ExitCode::from(1)
        }
    }
}

/// `sandbox`: serves the SpotDraft and ERP sandbox until Ctrl-C.
pub async fn serve_sandbox(listen: SocketAddr, fixtures: &Path, rate_limit: u32) -> ExitCode {
    let dataset = match Dataset::load(fixtures) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            return ExitCode::from(2);
        }
    };
    let config = SandboxConfig {
        listen,
        rate_limit_per_sec: rate_limit,
        ..SandboxConfig::default()
    };
    let sandbox = match Sandbox::start(config, dataset).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the sandbox: {}", error_chain(&e));
            return ExitCode::from(1);
        }
    };
    let creds = sandbox.credentials();
    println!("SpotDraft API: {}", sandbox.spotdraft_base_url());
    println!("  client-id:     {}", creds.client_id);
    println!("  client-secret: {}", creds.client_secret);
    println!("ERP API:       {}", sandbox.erp_base_url());
    println!("  bearer token:  {}", creds.erp_token);
    println!(
        "Faults:        GET/PUT {}_sandbox/faults",
        sandbox.erp_base_url().trim_end_matches("erp/")
    );
    println!("(sandbox credentials are public test values; Ctrl-C stops)");
    let _ = tokio::signal::ctrl_c().await;
    sandbox.shutdown().await;
    ExitCode::SUCCESS
}

fn load_or_report(path: &Path) -> Option<Job> {
    match load_job(path) {
        Ok(job) => Some(job),
        Err(problems) => {
            eprintln!("{problems}");
            None
        }
    }
}

/// `jobs/demo.toml` from the working directory, else from the source tree it was built from.
fn locate_demo_job(path: &Path) -> PathBuf {
    if path.exists() || path.is_absolute() {
        return path.to_path_buf();
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if built_from.exists() {
        built_from
    } else {
        path.to_path_buf()
    }
}

async fn run_loaded(job: &Job, opts: RunOptions, fail_on_drift: Option<FailOnDrift>) -> ExitCode {
    report_outcome(job, runner::run_job(job, opts).await, fail_on_drift)
}

/// Prints a run's summary (or its error) and picks the exit code.
fn report_outcome(
    job: &Job,
    outcome: anyhow::Result<runner::RunOutcome>,
    fail_on_drift: Option<FailOnDrift>,
) -> ExitCode {
    match outcome {
        Ok(outcome) => {
            println!("{}", outcome.render_summary());
            if outcome.apply_failed() > 0 {
                ExitCode::from(1)
            } else if fail_on_drift.is_some_and(|f| f.fails(&outcome)) {
                ExitCode::from(EXIT_DRIFT)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            if let Some(held @ LeaseError::Held { .. }) = e.downcast_ref::<LeaseError>() {
                eprintln!("error: {held}");
                return ExitCode::from(EXIT_LEASE_HELD);
            }
            if let Some(refused) = e.downcast_ref::<GuardError>() {
                eprintln!("error: job {:?}: {refused}", job.name);
                return ExitCode::from(EXIT_EXTRACT_GUARD);
            }
            eprintln!("error: job {:?} failed: {}", job.name, anyhow_chain(&e));
            ExitCode::from(1)
        }
    }
}
