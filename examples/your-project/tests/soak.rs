//! Every scenarios/*.toml is a test, run through `soak chaos`.
fn main() {
    soak::testing::Scenarios::new("scenarios").run()
}
