//! A fresh PostgreSQL database for one benchmark run, created and dropped with `psql`.

use std::hash::BuildHasher as _;
use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd;

/// A fresh PostgreSQL database for one run, dropped afterwards.
pub(super) struct BenchDatabase {
    admin_url: String,
    name: String,
    pub(super) url: String,
}

impl BenchDatabase {
    pub(super) fn create(admin_url: &str) -> Result<Self> {
        let name = format!(
            "webhookd_bench_{:016x}",
            std::collections::hash_map::RandomState::new().hash_one(std::process::id())
        );
        let database = Self {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name)?,
            name,
        };
        psql(admin_url, &format!("CREATE DATABASE {}", database.name))?;
        eprintln!("created database {}", database.name);
        Ok(database)
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        match psql(&self.admin_url, &sql) {
            Ok(()) => eprintln!("dropped database {}", self.name),
            Err(error) => eprintln!("warning: could not drop database {}: {error:#}", self.name),
        }
    }
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let psql = cmd::find_in_path("psql")
        .context("psql is needed to create the benchmark's PostgreSQL database")?;
    cmd::read(
        Command::new(psql)
            .args([
                "-X",
                "-w",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url,
                "-c",
                sql,
            ])
            .env("PGCONNECT_TIMEOUT", "10"),
    )?;
    Ok(())
}

/// `url` with its database name replaced by `name`, the query kept.
fn with_database(url: &str, name: &str) -> Result<String> {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let after_scheme = base
        .find("://")
        .context("the PostgreSQL URL has no scheme")?
        + 3;
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |slash| after_scheme + slash);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_replaced() {
        let check = |url: &str, expected: &str| {
            assert_eq!(with_database(url, "b").unwrap(), expected, "{url}");
        };
        check(
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://postgres@127.0.0.1:5432/b",
        );
        check(
            "postgres://u:p@h:1/db?sslmode=disable",
            "postgres://u:p@h:1/b?sslmode=disable",
        );
        check("postgres://h", "postgres://h/b");
        check("postgresql://h:5432?x=1", "postgresql://h:5432/b?x=1");
    }
}
