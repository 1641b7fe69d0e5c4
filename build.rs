// The SQL migrations are embedded at compile time (`sqlx::migrate!`): a new or changed file
// under `migrations/` rebuilds the crate.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
