//! Statements PostgreSQL plans afresh on every run instead of caching a generic plan.
//!
//! Diesel prepares each statement once per connection, and after five runs PostgreSQL may
//! settle on a generic plan for it. A plan settled while a table was small (a fresh
//! queue) stays a sequential scan when the table has grown: seen as 4–9 ms claim and
//! ingest statements under load. Forcing custom plans for every statement costs the
//! planning of all the cheap ones, so only the statements whose best plan depends on the
//! table's size go through here, unnamed, and are planned with their real parameters.

use diesel::{
    pg::Pg,
    prelude::*,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
    query_dsl::methods::{ExecuteDsl, LoadQuery},
};

use super::AnyConnection;
use crate::error::Error;

/// A query sent unnamed on PostgreSQL, so that it is planned on every run.
#[derive(Debug, Clone, Copy)]
pub struct Replanned<Q>(pub Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Replanned<Q> {
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        pass.unsafe_to_cache_prepared();
        self.0.walk_ast(pass.reborrow())
    }
}

impl<Q> QueryId for Replanned<Q> {
    type QueryId = ();
    // Not cached, so never looked up by id.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Replanned<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, C> RunQueryDsl<C> for Replanned<Q> {}

/// Loads `query`'s rows, planned afresh on PostgreSQL.
pub fn load<'q, Q, U>(conn: &mut AnyConnection, query: Q) -> Result<Vec<U>, Error>
where
    Q: RunQueryDsl<diesel::SqliteConnection> + LoadQuery<'q, diesel::SqliteConnection, U>,
    Replanned<Q>: LoadQuery<'q, diesel::PgConnection, U>,
{
    Ok(match conn {
        AnyConnection::Postgresql(c) => Replanned(query).load(c)?,
        AnyConnection::Sqlite(c) => query.load(c)?,
    })
}

/// Runs `statement`, planned afresh on PostgreSQL; returns the rows it touched.
pub fn execute<Q>(conn: &mut AnyConnection, statement: Q) -> Result<usize, Error>
where
    Q: RunQueryDsl<diesel::SqliteConnection> + ExecuteDsl<diesel::SqliteConnection>,
    Replanned<Q>: ExecuteDsl<diesel::PgConnection>,
{
    Ok(match conn {
        AnyConnection::Postgresql(c) => Replanned(statement).execute(c)?,
        AnyConnection::Sqlite(c) => statement.execute(c)?,
    })
}
