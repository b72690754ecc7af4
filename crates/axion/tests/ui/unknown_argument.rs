#[axion::trace(capture_everything)]
fn f() {}
fn main() {}
