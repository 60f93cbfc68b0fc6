//! The `contract-recon` command line: parses arguments and dispatches to
//! [`contract_recon::commands`].
//!
//! Exit codes: 0 success, 1 run failed, 2 invalid usage or job file, 3 drift found
//! with `--fail-on-drift`, 4 another run of the job holds its lease.

use clap::{Args, Parser, Subcommand};
use contract_recon::commands::{self, FailOnDrift, RunRequest};
use contract_recon::ingest::IngestMode;
use contract_recon::job::ApplyMode;
use contract_recon::sandbox;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Keeps SpotDraft contracts and an ERP in agreement: ingest, reconcile, report.
#[derive(Parser)]
#[command(name = "contract-recon", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check job files; print every problem as `file: key: reason`.
    Validate {
        /// Job files (TOML).
        #[arg(required = true)]
        jobs: Vec<PathBuf>,
        /// Also check the SpotDraft credentials (one list request) and that
        /// every metadata field the job names exists in the workspace.
        #[arg(long)]
        online: bool,
    },
    /// Run a job once: ingest contracts, load the ERP extract, reconcile, write reports.
    Run(RunArgs),
    /// Apply a reviewed plan of a job's run, as written, under the job's lease.
    Apply {
        /// The job file.
        job: PathBuf,
        /// The run whose plan is applied (`run-YYYYMMDD-HHMMSS-xxxxxxxx`).
        run_id: String,
        /// Who approved the plan (recorded in the journal).
        #[arg(long)]
        approved_by: Option<String>,
        /// Apply even when the plan has more actions than `[apply] max_actions_per_run`.
        #[arg(long)]
        force: bool,
    },
    /// Re-reconcile the contracts of a historical range (a backfill): walked in
    /// windows, checkpointed, resumable; its own report and plan, marked backfill.
    Backfill {
        /// The job file.
        job: PathBuf,
        /// First day, inclusive (YYYY-MM-DD, UTC).
        #[arg(long)]
        from: String,
        /// Last day, inclusive (YYYY-MM-DD, UTC).
        #[arg(long)]
        to: String,
        /// The field the days range over.
        #[arg(long, value_enum, default_value = "created")]
        by: BackfillBy,
        /// Window length: `<n>d` or `<n>h`.
        #[arg(long, default_value = "30d")]
        window: String,
        /// Resume the newest unfinished backfill of the job (same range).
        #[arg(long)]
        resume: bool,
        /// Take the job's lease from a holder known to be gone.
        #[arg(long)]
        break_lease: bool,
        /// Apply the planned corrections (overrides `[apply] mode`).
        #[arg(long, conflicts_with = "plan_only")]
        apply: bool,
        /// Only plan corrections, whatever `[apply] mode` says.
        #[arg(long)]
        plan_only: bool,
    },
    /// Run every job file of a folder that has a `schedule`, on its cron, in its
    /// time zone, until SIGTERM or SIGINT; SIGHUP, or a change to its job files, reloads the folder.
    Schedule {
        /// The folder of job files.
        #[arg(long, default_value = "jobs")]
        jobs: PathBuf,
        /// Runs going at once at most; a firing due over it is skipped.
        #[arg(long, default_value_t = 2)]
        max_concurrent: usize,
        /// Seconds running runs get to finish after SIGTERM or SIGINT.
        #[arg(long, default_value_t = 60)]
        grace_secs: u64,
        /// Serve `GET /healthz`, `/metrics` (Prometheus) and `/runs` on this
        /// address (`--http` alone: 127.0.0.1:9464). A non-loopback address
        /// is only used when given.
        #[arg(long, num_args = 0..=1, default_missing_value = contract_recon::schedule::http::DEFAULT_HTTP_ADDR)]
        http: Option<SocketAddr>,
        /// Take SpotDraft's webhooks (`POST /webhooks/spotdraft/<job>`) for the
        /// jobs with a `[webhooks]` section on this address (`--webhooks`
        /// alone: 127.0.0.1:9465); the same address as `--http` shares its listener.
        #[arg(long, num_args = 0..=1, default_missing_value = contract_recon::schedule::http::DEFAULT_WEBHOOKS_ADDR)]
        webhooks: Option<SocketAddr>,
    },
    /// List a job's runs, newest first: start, duration, outcome, exit code,
    /// drift counts, and the report folder or the error.
    Runs {
        /// The job file.
        job: PathBuf,
        /// Runs shown at most.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Run jobs/demo.toml against the embedded sandbox and print where the report is.
    Demo {
        /// The demo job file.
        #[arg(long, default_value = "jobs/demo.toml")]
        job: PathBuf,
        /// Write the reports here instead of the job's `output.url` (`out/demo`).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Edit one contract in the sandbox before this run (T-1072 gets the
        /// ERP's vendor id and a new PO number): run the demo, then
        /// `demo --change`, to see resolved and new drift.
        #[arg(long)]
        change: bool,
    },
    /// Serve the local SpotDraft and ERP sandbox until Ctrl-C.
    Sandbox {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Fixture dataset folder.
        #[arg(long, default_value = "fixtures/demo")]
        fixtures: PathBuf,
        /// Requests per second allowed per workspace.
        #[arg(long, default_value_t = 10)]
        rate_limit: u32,
    },
    /// Fixture datasets.
    Fixtures {
        #[command(subcommand)]
        command: FixturesCommand,
    },
}

#[derive(Args)]
struct RunArgs {
    /// The job file.
    job: PathBuf,
    /// Exit with 3 when drift is found: any drift row (`--fail-on-drift`), or
    /// only drift first seen in this run (`--fail-on-drift=new`).
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "any")]
    fail_on_drift: Option<FailOnDrift>,
    /// Walk every contract even when an earlier run left a watermark.
    #[arg(long, conflicts_with = "incremental")]
    full: bool,
    /// Only fetch contracts changed since the last watermark (fails without one).
    #[arg(long)]
    incremental: bool,
    /// Take the job's lease even though another run holds it. Only for a holder
    /// known to be gone (its host or process no longer exists): two live runs of
    /// one job would overwrite each other's state.
    #[arg(long)]
    break_lease: bool,
    /// Apply the run's planned corrections (overrides `[apply] mode`).
    #[arg(long, conflicts_with = "plan_only")]
    apply: bool,
    /// Only plan corrections, whatever `[apply] mode` says.
    #[arg(long)]
    plan_only: bool,
    /// With `--apply`: apply even over `[apply] max_actions_per_run`.
    #[arg(long)]
    force: bool,
    /// Run on an ERP extract the `[erp.extract]` guard refuses (fewer rows
    /// than `min_rows`, a drop beyond `max_row_drop`, older than
    /// `max_age_hours`), for this run only: for a run that expects it.
    #[arg(long)]
    accept_extract: bool,
    /// A targeted run of these contracts only (SpotDraft ids, `12,34` or
    /// `T-12,T-34`): looked up by id, upserted into the snapshot, reconciled
    /// against the latest extract; no watermark, no `latest.json`.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["full", "incremental"])]
    contracts: Vec<String>,
}

/// The contract numbers of `--contracts` (`12`, `T-12`, `H-12`).
fn contract_numbers(raw: &[String]) -> Result<Vec<i64>, String> {
    raw.iter()
        .map(|id| {
            contract_recon::spotdraft::model::ContractId::new(id.as_str())
                .number()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    format!("--contracts: {id:?} is not a SpotDraft contract id (12, T-12 or H-12)")
                })
        })
        .collect()
}

/// What a backfill's days range over.
#[derive(Clone, Copy, clap::ValueEnum)]
enum BackfillBy {
    /// `created_at`.
    Created,
    /// `last_updated_on`.
    Updated,
}

#[derive(Subcommand)]
enum FixturesCommand {
    /// Write a deterministic dataset: contracts, documents, ERP extract, expected drift.
    Gen {
        /// Number of contracts.
        #[arg(long)]
        contracts: u64,
        /// Random seed: the same seed writes the same bytes.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Also write snapshot.parquet (the ingestion stage's output) for benchmarks.
        #[arg(long)]
        snapshot: bool,
        /// Write executed documents (default: on up to 10,000 contracts).
        #[arg(long)]
        documents: Option<bool>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONTRACT_RECON_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(dispatch(cli.command))
}

async fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Validate { jobs, online } => commands::validate(&jobs, online).await,
        Command::Run(args) => {
            let contracts = match contract_numbers(&args.contracts) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let mode = if args.full {
                IngestMode::Full
            } else if args.incremental {
                IngestMode::Incremental
            } else {
                IngestMode::Auto
            };
            commands::run(RunRequest {
                job: args.job,
                fail_on_drift: args.fail_on_drift,
                mode,
                break_lease: args.break_lease,
                apply_mode: if args.apply {
                    Some(ApplyMode::Apply)
                } else if args.plan_only {
                    Some(ApplyMode::Plan)
                } else {
                    None
                },
                force_apply: args.force,
                accept_extract: args.accept_extract,
                contracts,
            })
            .await
        }
        Command::Apply {
            job,
            run_id,
            approved_by,
            force,
        } => commands::apply(&job, &run_id, approved_by, force).await,
        Command::Backfill {
            job,
            from,
            to,
            by,
            window,
            resume,
            break_lease,
            apply,
            plan_only,
        } => {
            commands::backfill(commands::BackfillArgs {
                job,
                from,
                to,
                by: match by {
                    BackfillBy::Created => contract_recon::ingest::WindowField::CreatedAt,
                    BackfillBy::Updated => contract_recon::ingest::WindowField::LastUpdatedOn,
                },
                window,
                resume,
                break_lease,
                apply_mode: if apply {
                    Some(ApplyMode::Apply)
                } else if plan_only {
                    Some(ApplyMode::Plan)
                } else {
                    None
                },
            })
            .await
        }
        Command::Schedule {
            jobs,
            max_concurrent,
            grace_secs,
            http,
            webhooks,
        } => {
            commands::schedule(contract_recon::schedule::driver::DaemonConfig {
                jobs_dir: jobs,
                max_concurrent_jobs: max_concurrent,
                grace: std::time::Duration::from_secs(grace_secs),
                http,
                webhooks,
            })
            .await
        }
        Command::Runs { job, limit } => commands::runs(&job, limit).await,
        Command::Demo {
            job,
            output,
            change,
        } => commands::demo(&job, output, change).await,
        Command::Sandbox {
            listen,
            fixtures,
            rate_limit,
        } => commands::serve_sandbox(listen, &fixtures, rate_limit).await,
        Command::Fixtures {
            command:
                FixturesCommand::Gen {
                    contracts,
                    seed,
                    out,
                    snapshot,
                    documents,
                },
        } => {
            commands::generate_fixtures(sandbox::gen::GenOptions {
                contracts,
                seed,
                out,
                documents,
                snapshot,
            })
            .await
        }
    }
}
