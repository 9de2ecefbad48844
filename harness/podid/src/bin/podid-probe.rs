//! The pod workload; see the `podid-probe` crate.
fn main() {
    podid_probe::main();
}
