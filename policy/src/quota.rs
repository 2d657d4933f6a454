//! Quotas (governor, GCRA): per consumer credential and per grant, requests per second with a
//! burst allowance, and requests per day.
//!
//! A day is a calendar day in China Standard Time (UTC+8, no daylight saving). Daily counts
//! live in memory and are saved to the metadata DB every few seconds ([`Quotas::persist`]) and
//! read back at start ([`Quotas::restore_today`]), so a restart gives no fresh allowance (a crash
//! forgets at most the calls since the last save).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use catalog::{Catalog, Grant};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use sqlx::Row;

/// Seconds China Standard Time (the day of daily quotas and of dates in audit queries) is
/// ahead of UTC.
pub const CST_OFFSET: i64 = 8 * 3600;

/// Whose allowance ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The calling credential's (the consumer's).
    Credential,
    /// The grant's (set when the demand was approved).
    Grant,
}

/// The window of the allowance that ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Requests per second (with a burst).
    Second,
    /// Requests per calendar day.
    Day,
}

/// A call over its quota: whose, which window, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverQuota {
    /// Whose allowance.
    pub scope: Scope,
    /// Which window.
    pub window: Window,
    /// Wait at least this long.
    pub retry_after: Duration,
    /// The allowance of that window (burst, or calls per day), for the RateLimit-Limit header.
    pub limit: u64,
}

/// Who a daily count belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Subject {
    Credential(i64),
    Grant(i64),
}

impl Subject {
    /// As stored: `c:<credential id>` or `g:<grant id>`.
    fn code(self) -> String {
        match self {
            Subject::Credential(id) => format!("c:{id}"),
            Subject::Grant(id) => format!("g:{id}"),
        }
    }

    fn parse(code: &str) -> Option<Self> {
        let (kind, id) = code.split_once(':')?;
        let id = id.parse().ok()?;
        match kind {
            "c" => Some(Subject::Credential(id)),
            "g" => Some(Subject::Grant(id)),
            _ => None,
        }
    }
}

/// Today's counts, and whether they changed since they were last saved.
struct Days {
    day: i64,
    counts: HashMap<Subject, u64>,
    changed: bool,
}

/// One grant's per-second limiter, rebuilt when the grant's quota changes.
struct GrantRate {
    per_second: f64,
    burst: u32,
    limiter: DefaultDirectRateLimiter,
}

/// The quotas of one server.
pub struct Quotas {
    credentials: DefaultKeyedRateLimiter<i64>,
    credential_burst: u32,
    credential_per_day: Option<u64>,
    grants: RwLock<HashMap<i64, Arc<GrantRate>>>,
    days: Mutex<Days>,
    clock: DefaultClock,
    /// Prefix of this instance's daily counts as stored (`""` for the exchange API's).
    prefix: &'static str,
}

/// The quota key of a client address (anonymous open-data calls): a negative number, so it
/// never meets a credential id, folded from the address (a collision shares an allowance).
pub fn address_key(address: std::net::IpAddr) -> i64 {
    let bits = match address {
        std::net::IpAddr::V4(v4) => u128::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => u128::from(v6),
        },
    };
    let folded = ((bits >> 64) as u64 ^ bits as u64) & (i64::MAX as u64);
    -(folded as i64) - 1
}

fn quota(per_second: f64, burst: u32) -> (Quota, u32) {
    let period = Duration::from_secs_f64(1.0 / per_second.max(1e-6));
    let burst = NonZeroU32::new(burst.max(1)).expect("at least one");
    let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
        .expect("a non-zero period")
        .allow_burst(burst);
    (quota, burst.get())
}

/// Today's number in China Standard Time, and the seconds left in it.
fn today(now: chrono::DateTime<chrono::Utc>) -> (i64, u64) {
    let local = now.timestamp() + CST_OFFSET;
    let day = local.div_euclid(86_400);
    (day, (86_400 - local.rem_euclid(86_400)) as u64)
}

impl Quotas {
    /// Each credential: `per_second` sustained (fractions allowed: 0.5 is one every two
    /// seconds), bursts of up to `burst`, and at most `per_day` calls a day when set.
    pub fn new(per_second: f64, burst: u32, per_day: Option<u64>) -> Self {
        let (q, burst) = quota(per_second, burst);
        Self {
            credentials: RateLimiter::keyed(q),
            credential_burst: burst,
            credential_per_day: per_day,
            grants: RwLock::new(HashMap::new()),
            days: Mutex::new(Days {
                day: today(chrono::Utc::now()).0,
                counts: HashMap::new(),
                changed: false,
            }),
            clock: DefaultClock::default(),
            prefix: "",
        }
    }

    /// The same, its daily counts stored under `prefix` (e.g. `open:`), apart from other
    /// instances' counts for the same credential.
    pub fn with_prefix(mut self, prefix: &'static str) -> Self {
        self.prefix = prefix;
        self
    }

    /// Takes one call from the allowances of `credential_id` and, when the call is made under
    /// a grant with quotas, of that grant; or says whose ran out and how long to wait.
    pub fn check(&self, credential_id: i64, grant: Option<&Grant>) -> Result<(), OverQuota> {
        self.credentials
            .check_key(&credential_id)
            .map_err(|not_until| OverQuota {
                scope: Scope::Credential,
                window: Window::Second,
                retry_after: not_until.wait_time_from(self.clock.now()),
                limit: u64::from(self.credential_burst),
            })?;
        if let Some(grant) = grant
            && let Some(per_second) = grant.quota_per_second
        {
            let rate = self.grant_rate(grant.id, per_second);
            rate.limiter.check().map_err(|not_until| OverQuota {
                scope: Scope::Grant,
                window: Window::Second,
                retry_after: not_until.wait_time_from(self.clock.now()),
                limit: u64::from(rate.burst),
            })?;
        }
        let grant_day = grant.and_then(|g| Some((g.id, u64::try_from(g.quota_per_day?).unwrap_or(0))));
        if self.credential_per_day.is_none() && grant_day.is_none() {
            return Ok(());
        }
        let (day, left) = today(chrono::Utc::now());
        let mut days = self.days.lock().unwrap_or_else(|p| p.into_inner());
        if days.day != day {
            *days = Days {
                day,
                counts: HashMap::new(),
                changed: false,
            };
        }
        let over = |scope, limit| OverQuota {
            scope,
            window: Window::Day,
            retry_after: Duration::from_secs(left),
            limit,
        };
        let credential_count = days
            .counts
            .get(&Subject::Credential(credential_id))
            .copied()
            .unwrap_or(0);
        if let Some(limit) = self.credential_per_day
            && credential_count >= limit
        {
            return Err(over(Scope::Credential, limit));
        }
        if let Some((grant_id, limit)) = grant_day {
            let count = days.counts.entry(Subject::Grant(grant_id)).or_insert(0);
            if *count >= limit {
                return Err(over(Scope::Grant, limit));
            }
            *count += 1;
        }
        *days.counts.entry(Subject::Credential(credential_id)).or_insert(0) += 1;
        days.changed = true;
        Ok(())
    }

    fn grant_rate(&self, grant_id: i64, per_second: f64) -> Arc<GrantRate> {
        let burst = per_second.ceil().max(1.0) as u32;
        if let Some(rate) = self.grants.read().unwrap_or_else(|p| p.into_inner()).get(&grant_id)
            && rate.per_second == per_second
        {
            return rate.clone();
        }
        let (q, burst) = quota(per_second, burst);
        let rate = Arc::new(GrantRate {
            per_second,
            burst,
            limiter: RateLimiter::direct(q),
        });
        self.grants
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(grant_id, rate.clone());
        rate
    }

    /// Reads back today's daily counts saved by [`Quotas::persist`].
    pub async fn restore_today(&self, catalog: &Catalog) -> crate::Result<()> {
        let (day, _) = today(chrono::Utc::now());
        let rows = sqlx::query("SELECT subject, used FROM quota_usage WHERE day = $1")
            .bind(day)
            .fetch_all(catalog.pool())
            .await?;
        let mut counts = HashMap::new();
        for row in rows {
            let subject: String = row.try_get("subject")?;
            let used: i64 = row.try_get("used")?;
            let Some(own) = subject.strip_prefix(self.prefix) else {
                continue;
            };
            if let Some(subject) = Subject::parse(own) {
                counts.insert(subject, u64::try_from(used).unwrap_or(0));
            }
        }
        *self.days.lock().unwrap_or_else(|p| p.into_inner()) = Days {
            day,
            counts,
            changed: false,
        };
        Ok(())
    }

    /// Saves today's daily counts, if they changed, and forgets days older than a week.
    pub async fn persist(&self, catalog: &Catalog) -> crate::Result<()> {
        let (day, counts) = {
            let mut days = self.days.lock().unwrap_or_else(|p| p.into_inner());
            if !days.changed {
                return Ok(());
            }
            days.changed = false;
            (days.day, days.counts.clone())
        };
        let mut tx = catalog.pool().begin().await?;
        for (subject, used) in counts {
            sqlx::query(
                "INSERT INTO quota_usage (day, subject, used) VALUES ($1, $2, $3) \
                 ON CONFLICT (day, subject) DO UPDATE SET used = excluded.used",
            )
            .bind(day)
            .bind(format!("{}{}", self.prefix, subject.code()))
            .bind(i64::try_from(used).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM quota_usage WHERE day < $1")
            .bind(day - 7)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(per_second: Option<f64>, per_day: Option<i64>) -> Grant {
        Grant {
            id: 7,
            resource_id: 1,
            consumer_department_id: 2,
            items: vec![],
            plain_items: vec![],
            expires_at: None,
            status: "active".into(),
            demand_id: None,
            row_filter: None,
            quota_per_second: per_second,
            quota_per_day: per_day,
        }
    }

    #[test]
    fn a_burst_is_allowed_then_refused_per_credential() {
        let quotas = Quotas::new(0.001, 3, None);
        for _ in 0..3 {
            assert!(quotas.check(1, None).is_ok());
        }
        let over = quotas.check(1, None).unwrap_err();
        assert!(over.retry_after > Duration::from_secs(100), "{over:?}");
        assert_eq!(
            (over.scope, over.window, over.limit),
            (Scope::Credential, Window::Second, 3)
        );
        assert!(
            quotas.check(2, None).is_ok(),
            "another credential has its own allowance"
        );
    }

    #[test]
    fn a_grant_quota_binds_every_credential_of_the_grant() {
        let quotas = Quotas::new(1000.0, 1000, None);
        let g = grant(Some(0.001), None);
        assert!(quotas.check(1, Some(&g)).is_ok());
        let over = quotas.check(2, Some(&g)).unwrap_err();
        assert_eq!((over.scope, over.window, over.limit), (Scope::Grant, Window::Second, 1));
        assert!(
            quotas.check(2, None).is_ok(),
            "outside the grant the credential's own quota applies"
        );
    }

    #[test]
    fn daily_allowances_run_out_and_name_the_scope() {
        let quotas = Quotas::new(1000.0, 1000, Some(5));
        let g = grant(None, Some(2));
        assert!(quotas.check(1, Some(&g)).is_ok());
        assert!(quotas.check(1, Some(&g)).is_ok());
        let over = quotas.check(1, Some(&g)).unwrap_err();
        assert_eq!((over.scope, over.window, over.limit), (Scope::Grant, Window::Day, 2));
        assert!(over.retry_after <= Duration::from_secs(86_400));
        // The refused call was not counted: 2 used, 3 left of the credential's 5.
        for _ in 0..3 {
            assert!(quotas.check(1, None).is_ok());
        }
        let over = quotas.check(1, None).unwrap_err();
        assert_eq!(
            (over.scope, over.window, over.limit),
            (Scope::Credential, Window::Day, 5)
        );
    }

    #[tokio::test]
    async fn daily_counts_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("meta.db").display());
        let catalog = Catalog::connect(&url).await.unwrap();
        let g = grant(None, Some(3));
        let before = Quotas::new(1000.0, 1000, None);
        for _ in 0..2 {
            assert!(before.check(1, Some(&g)).is_ok());
        }
        before.persist(&catalog).await.unwrap();
        let after = Quotas::new(1000.0, 1000, None);
        after.restore_today(&catalog).await.unwrap();
        assert!(after.check(2, Some(&g)).is_ok(), "one call of three left");
        assert_eq!(after.check(2, Some(&g)).unwrap_err().window, Window::Day);
    }

    #[tokio::test]
    async fn prefixed_counts_are_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("meta.db").display());
        let catalog = Catalog::connect(&url).await.unwrap();
        let exchange = Quotas::new(1000.0, 1000, Some(2));
        let open = Quotas::new(1000.0, 1000, Some(2)).with_prefix("open:");
        assert!(exchange.check(1, None).is_ok());
        assert!(exchange.check(1, None).is_ok());
        exchange.persist(&catalog).await.unwrap();
        open.restore_today(&catalog).await.unwrap();
        assert!(
            open.check(1, None).is_ok(),
            "the exchange API's count is not the open API's"
        );
        let restored = Quotas::new(1000.0, 1000, Some(2));
        restored.restore_today(&catalog).await.unwrap();
        assert!(restored.check(1, None).is_err());
    }

    #[test]
    fn addresses_are_keyed_apart_from_credentials_and_each_other() {
        let key = |s: &str| address_key(s.parse().unwrap());
        assert!(key("127.0.0.1") < 0 && key("::1") < 0 && key("255.255.255.255") < 0);
        assert_ne!(key("10.0.0.1"), key("10.0.0.2"));
        assert_eq!(key("10.0.0.1"), key("::ffff:10.0.0.1"));
    }

    #[test]
    fn the_day_turns_at_midnight_china_standard_time() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let (before, left) = today(at("2026-11-23T15:59:59Z"));
        let (after, full) = today(at("2026-11-23T16:00:00Z"));
        assert_eq!((after - before, left, full), (1, 1, 86_400));
    }
}
