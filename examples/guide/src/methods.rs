//! "Actors and methods": an account with exclusive and read methods, a typed error, a renamed
//! method, a method with several arguments, and a caller that matches on the typed error.

use francis::prelude::*;

// ANCHOR: state
/// The durable part of an account.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Balance {
    /// The balance, in cents.
    pub cents: i64,
    /// The memo of the last withdrawal.
    pub last_memo: Option<String>,
}
// ANCHOR_END: state

// ANCHOR: error
/// What can go wrong with an account. Callers get this same type back, from any host.
#[derive(Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum AccountError {
    /// The balance is too low for the withdrawal.
    #[error("insufficient funds: the balance is {balance} cents, {wanted} were asked")]
    InsufficientFunds {
        /// The balance now.
        balance: i64,
        /// The amount asked for.
        wanted: i64,
    },
    /// Amounts must be positive.
    #[error("amounts must be positive, got {0}")]
    NotPositive(i64),
    /// The state could not be read or written.
    #[error("storage failed: {0}")]
    Storage(String),
}

/// Lets methods use `?` on state operations, which fail with `francis::Error`.
impl From<francis::Error> for AccountError {
    fn from(e: francis::Error) -> Self {
        AccountError::Storage(e.to_string())
    }
}
// ANCHOR_END: error

// ANCHOR: actor
/// A bank account: one actor per account ID.
pub struct Account {
    balance: State<Balance>,
}

#[francis::actor]
impl Account {
    /// Runs at each activation: build the instance, load nothing yet.
    fn activate(ctx: &ActorContext) -> Self {
        Account {
            balance: ctx.state(),
        }
    }

    /// `&mut self`: an exclusive turn. Returns the new balance.
    pub async fn deposit(&mut self, cents: i64) -> Result<i64, AccountError> {
        if cents <= 0 {
            return Err(AccountError::NotPositive(cents));
        }
        Ok(self
            .balance
            .update(|b| {
                b.cents += cents;
                b.cents
            })
            .await?)
    }

    /// Several arguments: callers pass them in order (over HTTP, as a JSON array).
    pub async fn withdraw(&mut self, cents: i64, memo: String) -> Result<i64, AccountError> {
        let mut balance = self.balance.get().await?;
        if cents <= 0 {
            return Err(AccountError::NotPositive(cents));
        }
        if balance.cents < cents {
            return Err(AccountError::InsufficientFunds {
                balance: balance.cents,
                wanted: cents,
            });
        }
        balance.cents -= cents;
        balance.last_memo = Some(memo);
        let left = balance.cents;
        self.balance.set(balance).await?;
        Ok(left)
    }

    /// `&self`: a shared read turn, which may run alongside other reads. Its wire name is
    /// `get`, so HTTP callers use `/peek/account/<id>/get`.
    #[method(name = "get")]
    pub async fn balance(&self) -> Result<i64, AccountError> {
        Ok(self.balance.get().await?.cents)
    }

    /// Not `pub` and not marked: a plain helper, not callable from outside.
    fn is_empty(&self, balance: &Balance) -> bool {
        balance.cents == 0
    }

    /// A read method can call helpers like any Rust method.
    pub async fn empty(&self) -> Result<bool, AccountError> {
        let balance = self.balance.get().await?;
        Ok(self.is_empty(&balance))
    }
}
// ANCHOR_END: actor

/// What became of a payment.
#[derive(Debug, PartialEq)]
pub enum Payment {
    /// Paid; the balance left.
    Paid(i64),
    /// The account refused it; why.
    Declined(String),
}

// ANCHOR: caller
/// Pay from an account. The account's own errors come back as `CallError::Actor` with the
/// account's error type; `CallError::Francis` means the call itself failed.
pub async fn pay(service: &Service, account_id: &str, cents: i64) -> Result<Payment, Error> {
    let account: ActorRef<Account> = service.actor(account_id);
    match account.withdraw(cents, "coffee".to_owned()).await {
        Ok(left) => Ok(Payment::Paid(left)),
        Err(CallError::Actor(AccountError::InsufficientFunds { balance, .. })) => {
            Ok(Payment::Declined(format!("only {balance} cents available")))
        }
        Err(CallError::Actor(other)) => Ok(Payment::Declined(other.to_string())),
        Err(CallError::Francis(e)) => Err(e),
    }
}
// ANCHOR_END: caller
