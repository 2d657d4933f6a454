//! `sqlx::migrate!` embeds the migration files, but cargo does not notice a new file in the
//! folder by itself: without this, a build after adding a migration keeps the old set.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
