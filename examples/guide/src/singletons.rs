//! "Singletons": the exchange rates of a cluster, kept by one actor that fetches them from a
//! provider when it starts and again on a schedule, and that every host reaches at one ID.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use francis::host::{HostBuilder, SINGLETON_ID};
use francis::prelude::*;

// ANCHOR: settings
/// What the rates are registered with: the singleton's bootstrap data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateSettings {
    /// The currency the rates convert from.
    pub base: String,
    /// The currencies to fetch a rate for.
    pub currencies: Vec<String>,
    /// How often to fetch the rates again.
    pub refresh: Duration,
}
// ANCHOR_END: settings

/// Why the rates could not answer.
#[derive(Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum RatesError {
    /// This activation has not run its bootstrap (it failed, or this is not the singleton).
    #[error("the rates are not loaded")]
    NotLoaded,
    /// The provider has no rate for this currency.
    #[error("no rate for {0}")]
    Unknown(String),
    /// The provider failed.
    #[error("the rate provider failed: {0}")]
    Provider(String),
    /// Dispatching the refresh job failed.
    #[error("storage failed: {0}")]
    Storage(String),
}

/// A failed refresh is retried (the default disposition).
impl JobError for RatesError {}

impl From<francis::Error> for RatesError {
    fn from(e: francis::Error) -> Self {
        RatesError::Storage(e.to_string())
    }
}

// ANCHOR: rates
/// The cluster's exchange rates: one instance, at `SINGLETON_ID`.
pub struct Rates {
    ctx: ActorContext,
    /// Set by `bootstrap`, which runs before any call of an activation.
    settings: Option<RateSettings>,
    rates: BTreeMap<String, f64>,
}

#[francis::actor]
impl Rates {
    fn activate(ctx: &ActorContext) -> Self {
        Rates {
            ctx: ctx.clone(),
            settings: None,
            rates: BTreeMap::new(),
        }
    }

    /// Runs first in every activation of the singleton, with its host's registration data.
    /// Each new activation runs it again, so it must be safe to repeat.
    #[bootstrap]
    pub async fn bootstrap(&mut self, settings: RateSettings) -> Result<(), RatesError> {
        self.rates = fetch(&self.ctx, &settings)?;
        // While a job with this key exists, dispatching it again returns that job: however
        // many times the singleton is bootstrapped, it has one refresh job.
        self.ctx
            .this::<Rates>()
            .job_refresh(())
            .after(settings.refresh)
            .every(settings.refresh)
            .key("refresh")
            .dispatch()
            .await?;
        self.settings = Some(settings);
        Ok(())
    }

    /// Fetch the rates again: a job, every `settings.refresh`.
    #[job]
    pub async fn refresh(&mut self, _: ()) -> Result<(), RatesError> {
        let settings = self.settings.as_ref().ok_or(RatesError::NotLoaded)?;
        self.rates = fetch(&self.ctx, settings)?;
        Ok(())
    }

    /// How much one unit of the base currency is worth in `currency`.
    pub async fn rate(&self, currency: String) -> Result<f64, RatesError> {
        if self.settings.is_none() {
            return Err(RatesError::NotLoaded);
        }
        self.rates
            .get(&currency)
            .copied()
            .ok_or(RatesError::Unknown(currency))
    }

    /// The base currency of the rates.
    pub async fn base(&self) -> Result<String, RatesError> {
        self.settings
            .as_ref()
            .map(|s| s.base.clone())
            .ok_or(RatesError::NotLoaded)
    }
}

/// The rates of `settings`, from the provider client of this host.
fn fetch(ctx: &ActorContext, settings: &RateSettings) -> Result<BTreeMap<String, f64>, RatesError> {
    let source = ctx
        .data::<RateSource>()
        .ok_or_else(|| RatesError::Provider("no rate source on this host".into()))?;
    source
        .fetch(&settings.base, &settings.currencies)
        .map_err(RatesError::Provider)
}
// ANCHOR_END: rates

// ANCHOR: register
/// Add the rates to a host. Every host that registers `Rates` does so, with the same settings.
pub fn with_rates(
    builder: HostBuilder,
    settings: &RateSettings,
    source: RateSource,
) -> HostBuilder {
    builder
        .data(source)
        // One instance in the cluster, at SINGLETON_ID, bootstrapped with `settings`; it
        // never idles out.
        .register_singleton::<Rates>(settings)
}
// ANCHOR_END: register

/// What `amount` of the base currency is worth in `currency`.
pub async fn convert(
    service: &Service,
    amount: f64,
    currency: &str,
) -> Result<f64, CallError<RatesError>> {
    // ANCHOR: reach
    let rates: ActorRef<Rates> = service.actor(SINGLETON_ID);
    let rate = rates.rate(currency.to_owned()).await?;
    // ANCHOR_END: reach
    Ok(amount * rate)
}

/// A stand-in for an exchange-rate provider's client, with fixed rates. Clones share one
/// provider.
#[derive(Debug, Clone, Default)]
pub struct RateSource {
    inner: Arc<Mutex<Provider>>,
}

#[derive(Debug, Default)]
struct Provider {
    fetches: u32,
    failures_left: u32,
}

impl RateSource {
    /// The rates from `base` to each of `currencies` the provider knows. An unknown base is
    /// refused.
    pub fn fetch(
        &self,
        base: &str,
        currencies: &[String],
    ) -> Result<BTreeMap<String, f64>, String> {
        let mut provider = self.inner.lock().map_err(|e| e.to_string())?;
        provider.fetches += 1;
        if provider.failures_left > 0 {
            provider.failures_left -= 1;
            return Err("timed out".into());
        }
        let per_euro = |currency: &str| match currency {
            "EUR" => Some(1.0),
            "NOK" => Some(11.5),
            "SEK" => Some(11.0),
            "USD" => Some(1.25),
            _ => None,
        };
        let base_per_euro =
            per_euro(base).ok_or_else(|| format!("unknown base currency {base:?}"))?;
        Ok(currencies
            .iter()
            .filter_map(|c| per_euro(c).map(|rate| (c.clone(), rate / base_per_euro)))
            .collect())
    }

    /// Fail the next `n` fetches (for tests).
    pub fn fail_next(&self, n: u32) {
        if let Ok(mut provider) = self.inner.lock() {
            provider.failures_left = n;
        }
    }

    /// How many fetches were asked for, failed ones included.
    pub fn fetches(&self) -> u32 {
        self.inner.lock().map(|p| p.fetches).unwrap_or_default()
    }
}
