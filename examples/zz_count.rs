#[path = "../benches/workload.rs"]
mod workload;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = workload::Mode::parse(&args[1]).unwrap();
    let flows: u32 = args[2].parse().unwrap();
    let passes: u64 = args[3].parse().unwrap();
    let mut b = workload::Bench::of(mode, flows, 0, 1);
    b.pass(passes);
    eprintln!("forwarded {}", b.worker.engine().stats().forwarded);
}
