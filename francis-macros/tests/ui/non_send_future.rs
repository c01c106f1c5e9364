//! A method and a `deactivate` hook whose futures are not `Send` (they hold an `Rc` across an
//! await): rustc reports each, pointing at the function's name.
use std::rc::Rc;

use francis::prelude::*;

pub struct Counter {
    value: i64,
}

async fn pause() {}

#[francis::actor]
impl Counter {
    fn activate(_ctx: &ActorContext) -> Self {
        Counter { value: 0 }
    }

    pub async fn get(&self) -> Result<i64, String> {
        let shared = Rc::new(self.value);
        pause().await;
        Ok(*shared)
    }

    async fn deactivate(&mut self) {
        let shared = Rc::new(self.value);
        pause().await;
        drop(shared);
    }
}

fn main() {}
