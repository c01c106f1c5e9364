//! "Calling other actors": an order that reserves stock from an inventory actor, and an
//! inventory that tells waiting orders about a restock through alarms instead of calling back.

use francis::prelude::*;

/// What can go wrong with stock.
#[derive(Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum StockError {
    /// Not enough items left.
    #[error("only {left} left")]
    OutOfStock {
        /// How many are left.
        left: u32,
    },
    /// The state, an alarm or a call failed.
    #[error("{0}")]
    Francis(String),
}

impl From<francis::Error> for StockError {
    fn from(e: francis::Error) -> Self {
        StockError::Francis(e.to_string())
    }
}

/// What an inventory item remembers.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Stock {
    /// Items on the shelf.
    pub left: u32,
    /// Orders waiting for a restock.
    pub waiting: Vec<String>,
}

/// What an order remembers.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Not placed yet.
    #[default]
    New,
    /// Waiting for a restock of its item.
    Waiting,
    /// Items reserved.
    Reserved,
}

// ANCHOR: inventory
/// The stock of one item (actor ID = the item's SKU).
pub struct Inventory {
    ctx: ActorContext,
    stock: State<Stock>,
}

#[francis::actor]
impl Inventory {
    fn activate(ctx: &ActorContext) -> Self {
        Inventory {
            ctx: ctx.clone(),
            stock: ctx.state(),
        }
    }

    /// Take `qty` items, or remember `order` as waiting and fail.
    pub async fn reserve(&mut self, order: String, qty: u32) -> Result<u32, StockError> {
        let mut stock = self.stock.get().await?;
        if stock.left < qty {
            let left = stock.left;
            stock.waiting.push(order);
            self.stock.set(stock).await?;
            return Err(StockError::OutOfStock { left });
        }
        stock.left -= qty;
        let left = stock.left;
        self.stock.set(stock).await?;
        Ok(left)
    }

    /// Put items on the shelf and tell every waiting order. Calling `Order::retry` from here
    /// could deadlock: that order may be in its own turn, waiting on this inventory. An alarm
    /// only writes a row, so it never waits on the order's turn.
    pub async fn restock(&mut self, qty: u32) -> Result<(), StockError> {
        let mut stock = self.stock.get().await?;
        stock.left += qty;
        for order in std::mem::take(&mut stock.waiting) {
            let order: ActorRef<Order> = self.ctx.service().actor(order);
            order
                .alarm_restocked(self.ctx.id().to_owned())
                .set()
                .await?;
        }
        self.stock.set(stock).await?;
        Ok(())
    }
}
// ANCHOR_END: inventory

// ANCHOR: order
/// One order of one item.
pub struct Order {
    ctx: ActorContext,
    status: State<OrderStatus>,
}

#[francis::actor]
impl Order {
    fn activate(ctx: &ActorContext) -> Self {
        Order {
            ctx: ctx.clone(),
            status: ctx.state(),
        }
    }

    /// Reserve the item: a call to another actor, from inside this order's turn.
    pub async fn place(&mut self, sku: String) -> Result<OrderStatus, StockError> {
        let inventory: ActorRef<Inventory> = self.ctx.service().actor(sku);
        let status = match inventory.reserve(self.ctx.id().to_owned(), 1).await {
            Ok(_) => OrderStatus::Reserved,
            Err(CallError::Actor(StockError::OutOfStock { .. })) => OrderStatus::Waiting,
            Err(CallError::Actor(e)) => return Err(e),
            Err(CallError::Francis(e)) => return Err(e.into()),
        };
        self.status.set(status.clone()).await?;
        Ok(status)
    }

    /// Runs when the inventory reports a restock: try again.
    #[alarm]
    pub async fn restocked(&mut self, sku: String) -> Result<(), StockError> {
        if self.status.get().await? == OrderStatus::Waiting {
            self.place(sku).await?;
        }
        Ok(())
    }

    /// Where the order stands.
    pub async fn status(&self) -> Result<OrderStatus, StockError> {
        Ok(self.status.get().await?)
    }
}
// ANCHOR_END: order
