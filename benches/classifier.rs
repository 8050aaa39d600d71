//! Criterion benchmarks of the compiled classifier on the ClassBench 10k sets: build,
//! lookup over the trace, and one rule insert + remove in the built set.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_rules::classbench::{parse_filters, parse_trace};
use strata_rules::classifier::{ClassRule, Classifier};

const SETS: &[&str] = &["acl1_10k", "fw1_10k", "ipc1_10k"];

fn data(name: &str) -> Option<String> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/bench-data/classbench"
    ))
    .join(name);
    match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("skipping {name}: {}: {e}", path.display());
            None
        }
    }
}

fn classifier(c: &mut Criterion) {
    for set in SETS {
        let (Some(rules), Some(trace)) = (data(set), data(&format!("{set}_trace"))) else {
            continue;
        };
        let (Ok(rules), Ok(trace)) = (parse_filters(&rules), parse_trace(&trace)) else {
            eprintln!("skipping {set}: unparsable");
            continue;
        };
        let mut g = c.benchmark_group(format!("classifier/{set}"));
        g.sample_size(10);
        g.bench_function("build", |b| b.iter(|| Classifier::build(black_box(&rules))));

        let built = Classifier::build(&rules);
        let mut out = vec![None; trace.len()];
        g.throughput(Throughput::Elements(trace.len() as u64));
        g.bench_function("lookup_trace", |b| {
            b.iter(|| built.classify_batch(black_box(&trace), &mut out))
        });

        // One update: a rule from the middle of the set removed and put back.
        let mut live = Classifier::build(&rules);
        let victim: ClassRule = rules[rules.len() / 2].clone();
        g.throughput(Throughput::Elements(1));
        g.bench_function("remove_insert_one", |b| {
            b.iter(|| {
                live.remove(black_box(victim.id));
                live.insert(black_box(victim.clone()));
            })
        });
        g.finish();
    }
}

criterion_group!(benches, classifier);
criterion_main!(benches);
