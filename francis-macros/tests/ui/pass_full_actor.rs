//! A full, realistic actor: durable state, exclusive and shared methods, several arguments,
//! wire-name overrides, alarm handlers, a deactivation hook, private helpers, and callers using
//! the generated proxy without importing any trait.
#![deny(warnings, missing_docs)]

use std::time::Duration;

use francis::prelude::*;

/// The durable state of an account.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Balance {
    cents: i64,
    history: Vec<String>,
}

/// What can go wrong with an account.
#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
pub enum AccountError {
    /// Not enough money.
    #[error("insufficient funds: {available} cents available")]
    Insufficient {
        /// What is there.
        available: i64,
    },
    /// The store failed.
    #[error("storage failed: {0}")]
    Storage(String),
}

impl From<francis::Error> for AccountError {
    fn from(e: francis::Error) -> Self {
        AccountError::Storage(e.to_string())
    }
}

/// A statement-reminder payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reminder {
    /// Who to remind.
    pub email: String,
}

/// A bank account actor.
pub struct Account {
    ctx: ActorContext,
    balance: State<Balance>,
    reminders_sent: u32,
}

#[francis::actor(name = "bank_account")]
impl Account {
    fn activate(ctx: &ActorContext) -> Self {
        Account {
            ctx: ctx.clone(),
            balance: ctx.state(),
            reminders_sent: 0,
        }
    }

    /// Put money in; returns the new balance.
    pub async fn deposit(&mut self, cents: i64) -> Result<i64, AccountError> {
        let note = self.note("deposit", cents);
        Ok(self
            .balance
            .update(|b| {
                b.cents += cents;
                b.history.push(note);
                b.cents
            })
            .await?)
    }

    /// Take money out, with a memo.
    pub async fn withdraw(&mut self, cents: i64, memo: String) -> Result<i64, AccountError> {
        let available = self.balance.get().await?.cents;
        if available < cents {
            return Err(AccountError::Insufficient { available });
        }
        let note = format!("{} ({memo})", self.note("withdraw", cents));
        Ok(self
            .balance
            .update(|b| {
                b.cents -= cents;
                b.history.push(note);
                b.cents
            })
            .await?)
    }

    /// The current balance.
    pub async fn balance(&self) -> Result<i64, AccountError> {
        Ok(self.balance.load().await?.map_or(0, |b| b.cents))
    }

    /// The last `n` history entries.
    #[method(name = "recent-history")]
    pub async fn recent_history(&self, n: usize) -> Result<Vec<String>, AccountError> {
        let history = self
            .balance
            .load()
            .await?
            .map(|b| b.history.clone())
            .unwrap_or_default();
        Ok(history.into_iter().rev().take(n).collect())
    }

    /// Close the account.
    #[method(name = "close-account")]
    pub async fn close(&mut self) -> Result<bool, AccountError> {
        let existed = self.balance.delete().await?;
        self.ctx.halt();
        Ok(existed)
    }

    /// Send the monthly statement reminder.
    #[alarm]
    pub async fn remind(&mut self, data: Reminder) -> Result<(), AccountError> {
        let _ = data.email;
        self.reminders_sent += 1;
        Ok(())
    }

    /// Add a day of interest.
    #[alarm(name = "interest")]
    pub async fn apply_interest(&mut self, _data: ()) -> Result<(), AccountError> {
        self.balance.update(|b| b.cents += b.cents / 100).await?;
        Ok(())
    }

    async fn deactivate(&mut self) -> Result<(), AccountError> {
        let _ = self.reminders_sent;
        Ok(())
    }

    fn note(&self, what: &str, cents: i64) -> String {
        format!("{what} {cents} on {}", self.ctx.id())
    }
}

/// A caller that only sees `ActorRef<Account>`: no trait import needed.
pub async fn transfer(
    from: &ActorRef<Account>,
    to: &ActorRef<Account>,
    cents: i64,
) -> Result<(), CallError<AccountError>> {
    from.withdraw(cents, format!("to {}", to.id())).await?;
    let _new_balance: i64 = to.deposit(cents).await?;
    let _recent: Vec<String> = to.recent_history(5).await?;
    Ok(())
}

/// Scheduling the account's alarms.
pub async fn schedule(account: &ActorRef<Account>) -> Result<(), francis::Error> {
    account
        .alarm_remind(Reminder {
            email: "a@example.com".into(),
        })
        .after(Duration::from_secs(10))
        .every(Duration::from_secs(30 * 24 * 3600))
        .set()
        .await?;
    account
        .alarm_apply_interest(())
        .every(Duration::from_secs(24 * 3600))
        .set()
        .await
}

fn main() {
    assert_eq!(<Account as Actor>::NAME, "bank_account");
    let names: Vec<&str> = <Account as Actor>::methods()
        .iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(
        names,
        [
            "deposit",
            "withdraw",
            "balance",
            "recent-history",
            "close-account",
            "remind",
            "interest"
        ]
    );
}
