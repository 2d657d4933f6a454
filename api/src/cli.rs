//! The `huitong` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::settings::Settings;
use crate::startup::{Application, open_stores};
use crate::{Failure, Result};

/// 汇通 Huitong — government data-sharing and exchange platform (政务数据共享交换平台).
#[derive(Debug, Parser)]
#[command(name = "huitong", version, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./huitong.toml when it exists.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory; overrides `data_dir` of the configuration.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a demo platform from nothing: departmental source databases, catalog, sync,
    /// credentials; then serve it and print ready-to-paste curl commands.
    Demo(DemoArgs),
    /// Serve the HTTP API.
    Serve {
        /// Port to listen on; overrides `listen` of the configuration.
        #[arg(long)]
        port: Option<u16>,
    },
    /// Run connectors now, with a progress bar.
    Sync {
        /// The connector to run.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        connector: Option<String>,
        /// Run every connector.
        #[arg(long)]
        all: bool,
    },
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// API keys (accounts): issue one, e.g. the first platform admin's.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The resource catalog (政务信息资源目录) as compilation-template files.
    #[command(subcommand)]
    Catalog(CatalogCommand),
}

/// Key subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key and print it (shown this once; only its hash is stored).
    Issue {
        /// A name people recognize (system or officer).
        #[arg(long)]
        name: String,
        /// platform_admin, reviewer, provider_admin, consumer or open_data_developer.
        #[arg(long)]
        role: String,
        /// The department it acts for.
        #[arg(long)]
        department: Option<String>,
    },
}

/// Catalog subcommands.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Import a compilation template (.xlsx or .csv, UTF-8 or GBK): one row per data item,
    /// Chinese headers. New resources become drafts; existing ones are updated. Every error is
    /// listed by row and column and nothing is imported unless the whole file is valid
    /// (exit 1).
    Import {
        /// The file.
        file: PathBuf,
    },
    /// Export every resource as a compilation template (.xlsx, or .csv in UTF-8 with BOM).
    Export {
        /// The file to write; its extension chooses the format.
        file: PathBuf,
    },
}

/// Options of `huitong demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port to serve on.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Rows in the public-security household register; the other sources scale with it.
    #[arg(long, default_value_t = 20_000)]
    pub rows: usize,
    /// Seed of the data generator (same seed, same data).
    #[arg(long, default_value_t = 20_161_205)]
    pub seed: u64,
    /// Build everything, write demo-credentials.json, and exit without serving.
    #[arg(long)]
    pub no_serve: bool,
    /// Before syncing, apply the next day of changes to the household register (people move,
    /// die, are born) — run again on the same data dir to watch the change feed follow.
    #[arg(long)]
    pub next_day: bool,
}

/// Audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole hash chain. Exits 0 when intact, 1 naming the first broken record,
    /// 2 when it cannot be checked.
    Verify,
}

/// Parses the command line, runs it, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,huitong=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Loads settings with the command line's overrides applied.
pub fn settings_for(cli: &Cli) -> Result<Settings> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(dir) = &cli.data_dir {
        settings.data_dir = dir.clone();
    }
    Ok(settings)
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let mut settings = settings_for(&cli)?;
    match cli.command {
        Command::Demo(args) => crate::demo::run(settings, args).await,
        Command::Serve { port } => {
            if let Some(port) = port {
                settings.set_port(port);
            }
            let app = Application::build(&settings).await?;
            println!(
                "huitong listening on http://{}:{}",
                host_of(&settings.listen),
                app.port()
            );
            serve_until_ctrl_c(app).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync { connector, all } => {
            let (catalog, libraries) = open_stores(&settings).await?;
            let connectors = if all {
                catalog.connectors().await?
            } else {
                vec![
                    catalog
                        .connector_by_name(connector.as_deref().unwrap_or_default())
                        .await?,
                ]
            };
            let mut failed = false;
            let mut synced = Vec::new();
            for connector in &connectors {
                match crate::demo::sync_with_progress(&catalog, &libraries, connector).await {
                    Ok(()) => synced.extend(catalog.resource_by_code(&connector.resource_code).await?.meta.library),
                    Err(_) => failed = true,
                }
            }
            // Without a server, the themes that follow these libraries are refreshed here.
            let refreshed = crate::themes::follow_changes(&catalog, &libraries, &synced)
                .await
                .map_err(|e| Failure::msg(e.to_string()))?;
            for (theme, m) in refreshed {
                let c = m.counts;
                match &m.error {
                    None => println!(
                        "  ✔ theme {theme}: {} new, {} updated, {} deleted, {} rejected → v{}",
                        c.inserted,
                        c.updated,
                        c.deleted,
                        c.rejected,
                        m.library_version.unwrap_or_default()
                    ),
                    Some(error) => {
                        failed = true;
                        println!("  ✘ theme {theme} not refreshed: {error}");
                    }
                }
            }
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Command::Catalog(CatalogCommand::Import { file }) => {
            let catalog = catalog::Catalog::connect(&settings.database_url()).await?;
            // Resources may name themed libraries: their schemas must be known to validate them.
            crate::themes::register_declared(&catalog)
                .await
                .map_err(|e| Failure::msg(e.to_string()))?;
            let actor = format!("huitong catalog import {}", file.display());
            match catalog.import_catalog(&actor, &file).await? {
                catalog::ImportOutcome::Imported {
                    created,
                    updated,
                    unchanged,
                } => {
                    println!(
                        "imported {}: {} created (drafts), {} updated, {} unchanged",
                        file.display(),
                        created.len(),
                        updated.len(),
                        unchanged.len()
                    );
                    for code in &created {
                        println!("  + {code}");
                    }
                    for code in &updated {
                        println!("  ~ {code}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                catalog::ImportOutcome::Rejected(errors) => {
                    println!(
                        "{} not imported: {} error(s); nothing was changed",
                        file.display(),
                        errors.len()
                    );
                    for e in &errors {
                        println!("  {e}");
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Keys(KeysCommand::Issue { name, role, department }) => {
            let catalog = catalog::Catalog::connect(&settings.database_url()).await?;
            let role = policy::Role::parse(&role).ok_or_else(|| {
                Failure::msg(format!(
                    "--role {role:?} is not one of {}",
                    policy::Role::ALL.map(|r| r.code()).join(", ")
                ))
            })?;
            let new = crate::routes::credentials::NewCredential {
                name,
                role,
                department_code: department,
                expires_at: None,
            };
            let issued = crate::routes::credentials::issue(&catalog, &new)
                .await
                .map_err(|p| Failure::msg(p.detail))?;
            println!("{}", issued.key);
            eprintln!(
                "issued key {} ({}) — shown once, store it now",
                issued.credential.id,
                role.code()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Catalog(CatalogCommand::Export { file }) => {
            let catalog = catalog::Catalog::connect(&settings.database_url()).await?;
            let count = catalog.export_catalog(&file).await?;
            println!("exported {count} resources to {}", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCommand::Verify) => {
            let catalog = catalog::Catalog::connect(&settings.database_url()).await?;
            let report = policy::audit::verify(&catalog, Some(&settings.audit_dir())).await?;
            match report.first_broken {
                None => {
                    println!("audit chain intact: {} records verified", report.records);
                    Ok(ExitCode::SUCCESS)
                }
                Some(broken) => {
                    println!("audit chain BROKEN at record {}: {}", broken.seq, broken.reason);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

/// Serves until Ctrl-C, then stops gracefully.
pub async fn serve_until_ctrl_c(app: Application) -> Result<()> {
    let handle = app.handle();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            handle.stop(true).await;
        }
    });
    app.run_until_stopped().await.map_err(Failure::from)
}

pub(crate) fn host_of(listen: &str) -> &str {
    listen.rsplit_once(':').map(|(h, _)| h).unwrap_or("127.0.0.1")
}
