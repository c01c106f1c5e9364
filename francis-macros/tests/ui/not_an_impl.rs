//! `#[francis::actor]` on the struct definition instead of its impl block.

#[francis::actor]
pub struct Counter {
    value: i64,
}

fn main() {}
