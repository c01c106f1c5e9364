//! `#[francis::actor]` on a trait impl instead of the inherent impl block.

pub struct Counter {
    value: i64,
}

#[francis::actor]
impl Default for Counter {
    fn default() -> Self {
        Counter { value: 0 }
    }
}

fn main() {}
