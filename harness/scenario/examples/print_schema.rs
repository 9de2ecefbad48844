//! Prints the scenario JSON Schema (the same text as `podid schema`).
fn main() {
    print!("{}", podid_scenario::schema_json());
}
