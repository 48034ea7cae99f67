//! Ordered collections and their pages.

use serde::Serialize;

use super::context::Context;

/// An `OrderedCollection` whose items live on pages.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderedCollection<T: Serialize> {
    /// Context.
    #[serde(rename = "@context")]
    pub context: Context,
    /// Collection URL.
    pub id: String,
    /// Always `OrderedCollection`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Item count.
    pub total_items: i64,
    /// First page, when the collection is paged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    /// Inline items, when it is small and not paged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordered_items: Option<Vec<T>>,
}

/// One page of an ordered collection.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderedCollectionPage<T: Serialize> {
    /// Context.
    #[serde(rename = "@context")]
    pub context: Context,
    /// Page URL.
    pub id: String,
    /// Always `OrderedCollectionPage`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The collection.
    pub part_of: String,
    /// Next page (older items).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Items.
    pub ordered_items: Vec<T>,
}
