//! Cursor pagination, newest first, stable under concurrent inserts.

use uuid::Uuid;

use super::Timestamp;

/// Position after the last item of a page: lists are ordered by (time, id) descending, and the
/// next page holds the items strictly before this pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub at: Timestamp,
    pub id: Uuid,
}

impl Cursor {
    /// Opaque text for APIs: the micros and the id, hex.
    pub fn encode(&self) -> String {
        format!("{:016x}{}", self.at.unix_micros(), self.id.simple())
    }

    /// Reads [`Cursor::encode`]'s text.
    pub fn decode(text: &str) -> Option<Self> {
        if text.len() != 48 || !text.is_ascii() {
            return None;
        }
        let (micros, id) = text.split_at(16);
        let micros = u64::from_str_radix(micros, 16).ok()?;
        Some(Self {
            at: Timestamp::from_unix_micros(i64::from_ne_bytes(micros.to_ne_bytes())),
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

/// A page request: at most `limit` items after `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    limit: u32,
    pub after: Option<Cursor>,
}

/// A page size outside 1..=500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limit must be between 1 and {}", PageRequest::MAX_LIMIT)]
pub struct InvalidPageLimit;

impl PageRequest {
    /// Items per page unless asked otherwise.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// Most items per page.
    pub const MAX_LIMIT: u32 = 500;

    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Result<Self, InvalidPageLimit> {
        if limit == 0 || limit > Self::MAX_LIMIT {
            return Err(InvalidPageLimit);
        }
        Ok(Self { limit, after: None })
    }

    /// The page after `cursor`.
    #[must_use]
    pub fn after(self, cursor: Option<Cursor>) -> Self {
        Self {
            after: cursor,
            ..self
        }
    }

    /// Items wanted.
    pub const fn limit(&self) -> u32 {
        self.limit
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: Self::DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// One page of items and the cursor of the next, `None` on the last page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` items fetched in order: the extra one, when present,
    /// only proves that a next page exists. `key` gives an item's (time, id).
    pub fn from_overfetch(
        mut items: Vec<T>,
        request: PageRequest,
        key: impl Fn(&T) -> Cursor,
    ) -> Self {
        let limit = request.limit() as usize;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(key)
        } else {
            None
        };
        Self { items, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_refuses_garbage() {
        let cursor = Cursor {
            at: Timestamp::from_unix_micros(1_764_214_146_123_456),
            id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        let negative = Cursor {
            at: Timestamp::from_unix_micros(-5),
            id: Uuid::nil(),
        };
        assert_eq!(Cursor::decode(&negative.encode()), Some(negative));
        assert_eq!(Cursor::decode(""), None);
        assert_eq!(Cursor::decode(&"z".repeat(48)), None);
        assert_eq!(Cursor::decode(&"é".repeat(24)), None);
    }

    #[test]
    fn limits() {
        assert_eq!(PageRequest::first(0), Err(InvalidPageLimit));
        assert_eq!(PageRequest::first(501), Err(InvalidPageLimit));
        assert_eq!(PageRequest::first(500).map(|p| p.limit()), Ok(500));
        assert_eq!(PageRequest::default().limit(), 50);
    }

    #[test]
    fn overfetch_sets_next_only_when_more_exist() {
        let key = |n: &i64| Cursor {
            at: Timestamp::from_unix_micros(*n),
            id: Uuid::nil(),
        };
        let request = PageRequest::first(2).unwrap();
        let page = Page::from_overfetch(vec![5, 4, 3], request, key);
        assert_eq!(page.items, vec![5, 4]);
        assert_eq!(page.next, Some(key(&4)));
        let page = Page::from_overfetch(vec![5, 4], request, key);
        assert_eq!(page.next, None);
    }
}
