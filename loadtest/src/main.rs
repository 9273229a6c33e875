//! `hearth-loadtest`: the load generator behind BENCHMARKS.md. Its scenarios,
//! delivery checks and report are built by their own issue; until then this binary
//! says so instead of pretending to measure anything.

fn main() {
    eprintln!("hearth-loadtest: not built yet; the load-test issue fills in scenarios and reports");
    std::process::exit(2);
}
