//! `benches/python/aio_bench.py` runs the same workloads as `aio-bench`, at
//! the same counts: the Python columns are only comparable if they agree,
//! so this reads the script's `COUNTS` table and checks it against
//! `Workload::count`.

use aio_benches::Workload;

/// The `"name": count,` lines of the script's `COUNTS = {...}` block.
fn python_counts() -> Vec<(String, u64)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/python/aio_bench.py");
    let script = std::fs::read_to_string(path).expect("benches/python/aio_bench.py is readable");
    let block = script
        .split_once("COUNTS = {")
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(block, _)| block)
        .expect("the script has a `COUNTS = {...}` table");
    block
        .lines()
        .filter_map(|line| {
            let (name, count) = line.trim().trim_end_matches(',').split_once(':')?;
            let name = name.trim().trim_matches('"').to_owned();
            let count = count.trim().replace('_', "").parse().ok()?;
            Some((name, count))
        })
        .collect()
}

#[test]
fn the_python_workloads_are_the_rust_ones_at_the_same_counts() {
    let python = python_counts();
    let rust: Vec<(String, u64)> = Workload::ALL
        .iter()
        .map(|workload| (workload.name().to_owned(), workload.count(false)))
        .collect();
    assert_eq!(python, rust);
}
