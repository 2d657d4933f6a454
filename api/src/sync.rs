//! Connector runs in the server: started by hand (`POST /api/v1/connectors/{id}/runs`) or by
//! the scheduler, at most one at a time per connector, each on its own task of the runtime the
//! service was made on (the process's multi-threaded one), never on an HTTP worker's.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalog::{Catalog, Connector, RunStatus, SyncRun};
use connectors::{ConnectorConfig, Schedule};
use exchange_core::Library;

use crate::libraries::Libraries;
use crate::settings::SyncSettings;
use crate::themes::ThemeService;

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// This connector already has a run under way in this process.
    #[error("connector {0} already has a run under way")]
    AlreadyRunning(String),
    /// The connector's resource is not served from a library.
    #[error("{0}")]
    NoLibrary(String),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] catalog::Error),
}

/// Starts and tracks connector runs.
pub struct SyncService {
    catalog: Catalog,
    libraries: Libraries,
    running: Mutex<HashSet<i64>>,
    settings: SyncSettings,
    themes: Option<Arc<ThemeService>>,
    /// Where runs go: a run started from a request would otherwise land on that HTTP worker's
    /// own single-threaded runtime and hold it (and every connection it serves) while it maps
    /// and encodes rows.
    runtime: tokio::runtime::Handle,
}

struct Logged;

impl connectors::Progress for Logged {
    fn rows(&self, _n: u64) {}
    fn retrying(&self, attempt: u32, wait: Duration, error: &connectors::Error) {
        tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, %error, "connector run retrying");
    }
}

impl SyncService {
    /// A service over the server's catalog and libraries; runs go to the runtime it is made on.
    pub fn new(catalog: Catalog, libraries: Libraries, settings: SyncSettings) -> Self {
        Self {
            catalog,
            libraries,
            running: Mutex::new(HashSet::new()),
            settings,
            themes: None,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// After a run changes a library, the themes reading it follow ([`ThemeService::library_changed`]).
    pub fn with_themes(mut self, themes: Arc<ThemeService>) -> Self {
        self.themes = Some(themes);
        self
    }

    /// The library a connector feeds.
    pub async fn library_of(&self, connector: &Connector) -> Result<Arc<Library>, StartError> {
        let resource = self.catalog.resource_by_code(&connector.resource_code).await?;
        resource
            .meta
            .library
            .as_deref()
            .and_then(|name| self.libraries.get(name))
            .ok_or_else(|| {
                StartError::NoLibrary(format!(
                    "resource {} of connector {} is not served from a library",
                    resource.code, connector.name
                ))
            })
    }

    /// Records a run of `connector` as started and carries it out on a task of its own;
    /// returns the run as recorded (status `running`).
    pub async fn start(self: &Arc<Self>, connector: Connector, trigger: &str) -> Result<SyncRun, StartError> {
        let library = self.library_of(&connector).await?;
        if !self.running.lock().expect("lock").insert(connector.id) {
            return Err(StartError::AlreadyRunning(connector.name));
        }
        let run_id = match self.catalog.start_run(connector.id, trigger).await {
            Ok(id) => id,
            Err(e) => {
                self.running.lock().expect("lock").remove(&connector.id);
                return Err(e.into());
            }
        };
        let this = self.clone();
        self.runtime.spawn(async move {
            let outcome = connectors::execute_run(&this.catalog, &library, &connector, run_id, &Logged).await;
            this.running.lock().expect("lock").remove(&connector.id);
            match outcome {
                // Themes follow a changed input; quality is scored once the connector is free
                // again: a scan of a large library must not hold up the connector's next run.
                Ok(run) => {
                    let c = run.counts;
                    if c.inserted + c.updated + c.deleted > 0
                        && let Some(themes) = &this.themes
                    {
                        themes.library_changed(library.schema().name);
                    }
                    crate::quality::after_commit(&this.catalog, &this.libraries, &connector).await;
                }
                Err(e) => {
                    tracing::warn!(connector = %connector.name, run = run_id, error = %e, "connector run failed");
                }
            }
        });
        Ok(self.catalog.run_by_id(run_id).await?)
    }

    /// Whether `connector_id` has a run under way in this process.
    pub fn is_running(&self, connector_id: i64) -> bool {
        self.running.lock().expect("lock").contains(&connector_id)
    }

    /// How often `connector` runs by itself; `None` when only by hand.
    pub async fn interval(&self, connector: &Connector) -> Result<Option<Duration>, catalog::Error> {
        let Ok(config) = ConnectorConfig::from_json(&connector.config) else {
            return Ok(None);
        };
        let seconds = match config.schedule {
            Schedule::Manual => return Ok(None),
            Schedule::Every(seconds) => seconds,
            Schedule::Catalog => {
                let resource = self.catalog.resource_by_code(&connector.resource_code).await?;
                return Ok(crate::themes::cycle_interval(
                    resource.meta.update_cycle,
                    self.settings.realtime_interval_seconds,
                ));
            }
        };
        Ok(Some(Duration::from_secs(seconds.max(1))))
    }

    /// When `connector`, whose latest run is `last`, is next due; `None` when it runs only by hand.
    pub async fn next_due(
        &self,
        connector: &Connector,
        last: Option<&SyncRun>,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, catalog::Error> {
        let Some(interval) = self.interval(connector).await? else {
            return Ok(None);
        };
        let Some(last) = last else {
            return Ok(Some(chrono::Utc::now()));
        };
        let started = chrono::DateTime::parse_from_rfc3339(&last.started_at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| chrono::Utc::now());
        let wait = if last.status == RunStatus::Failed {
            interval.min(Duration::from_secs(self.settings.retry_failed_after_seconds))
        } else {
            interval
        };
        Ok(Some(
            started + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX),
        ))
    }

    /// Runs the scheduler until the process ends: every tick, starts the connectors that are due.
    pub fn spawn_scheduler(self: Arc<Self>) {
        if !self.settings.scheduler {
            return;
        }
        let tick = Duration::from_secs(self.settings.tick_seconds.max(1));
        self.runtime.clone().spawn(async move {
            let mut timer = tokio::time::interval(tick);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                timer.tick().await;
                if let Err(e) = self.start_due().await {
                    tracing::warn!(error = %e, "scheduler could not read the catalog");
                }
            }
        });
    }

    async fn start_due(self: &Arc<Self>) -> Result<(), catalog::Error> {
        for connector in self.catalog.connectors().await? {
            if self.is_running(connector.id) {
                continue;
            }
            let last = self.catalog.runs(connector.id, 1).await?.into_iter().next();
            if self
                .next_due(&connector, last.as_ref())
                .await?
                .is_some_and(|due| due <= chrono::Utc::now())
            {
                let name = connector.name.clone();
                match self.start(connector, "schedule").await {
                    Ok(run) => tracing::info!(connector = %name, run = run.id, "scheduled run started"),
                    Err(e) => tracing::warn!(connector = %name, error = %e, "scheduled run not started"),
                }
            }
        }
        Ok(())
    }
}
