#[derive(axion::HasTracer)]
struct Service { name: String }
fn main() {}
