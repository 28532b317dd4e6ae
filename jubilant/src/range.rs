//! Ranges (design 14.2): lazy, double-ended walks over keys, fetched a
//! page at a time from whatever serves pages (the database, a snapshot,
//! a remote server).
//!
//! Invariant kept here: **each key is yielded once, from one end or the
//! other.** The two ends share one middle, the keys neither has fetched:
//! a page from the front narrows it from below (past the page's last key),
//! one from the back from above; once the middle is empty, each end takes
//! what the other fetched and has not yet yielded, from the far side.

use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};

use futures::Stream;
use jubilant_core::db::{ScanPage, ScanRequest, Value};

use crate::Result;

/// Entries a range fetches per page, unless [`Range::page_keys`] says
/// otherwise.
///
/// ```
/// assert!(jubilant::RANGE_PAGE_KEYS >= 1);
/// ```
pub const RANGE_PAGE_KEYS: usize = 256;

/// What serves a range its pages: the database, a snapshot, a remote
/// server. One page of a scan, as [`ScanRequest`] asks.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), jubilant::Error> {
/// # let dir = tempfile::tempdir()?;
/// use jubilant::Pages;
/// use jubilant_core::db::ScanRequest;
/// let db = jubilant::open(dir.path()).await?;
/// db.set("k", 1).await?;
/// let page = db.page(&ScanRequest::new(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)).await?;
/// assert_eq!(page.entries.len(), 1);
/// assert_eq!(page.resume_after, None);
/// # Ok(())
/// # }
/// ```
pub trait Pages: Sync {
    /// One page of `request`.
    fn page(&self, request: &ScanRequest) -> impl Future<Output = Result<ScanPage>> + Send;
}

/// A key and its value, as ranges yield them.
///
/// ```
/// let entry: jubilant::Entry = (b"key".to_vec(), jubilant::Value::from(1));
/// # let _ = entry;
/// ```
pub type Entry = (Vec<u8>, Value);

/// A lazy, double-ended walk over the keys within some bounds, in key
/// order: [`Range::next`] from the low end, [`Range::next_back`] from the
/// high end, or as a [`Stream`] either way. Outside a snapshot, each
/// page reads the database as it is then (as `SCAN` does: a key present
/// throughout is yielded once; one written meanwhile may or may not be).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let db = jubilant::open(dir.path()).await?;
/// for key in ["a", "b", "c", "d"] {
///     db.set(key, key).await?;
/// }
/// let mut range = db.range("b"..);
/// assert_eq!(range.next().await.transpose()?.map(|(k, _)| k), Some(b"b".to_vec()));
/// assert_eq!(range.next_back().await.transpose()?.map(|(k, _)| k), Some(b"d".to_vec()));
/// assert_eq!(range.next().await.transpose()?.map(|(k, _)| k), Some(b"c".to_vec()));
/// assert!(range.next().await.is_none());
/// # Ok(())
/// # }
/// ```
pub struct Range<'a, P: Pages + ?Sized> {
    pages: &'a P,
    /// The middle: keys neither end has fetched.
    low: Bound<Vec<u8>>,
    high: Bound<Vec<u8>>,
    /// Fetched from the front, ascending.
    front: VecDeque<Entry>,
    /// Fetched from the back, descending.
    back: VecDeque<Entry>,
    /// The middle holds no more keys (or an error ended the range).
    middle_done: bool,
    page_keys: usize,
}

impl<P: Pages + ?Sized> std::fmt::Debug for Range<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Range")
            .field("low", &self.low)
            .field("high", &self.high)
            .field("middle_done", &self.middle_done)
            .finish_non_exhaustive()
    }
}

/// `bounds` as owned byte bounds.
pub(crate) fn owned_bounds<K: AsRef<[u8]>>(
    bounds: &impl RangeBounds<K>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let own = |bound: Bound<&K>| bound.map(|key| key.as_ref().to_vec());
    (own(bounds.start_bound()), own(bounds.end_bound()))
}

/// Whether no key lies between `low` and `high`.
fn crossed(low: &Bound<Vec<u8>>, high: &Bound<Vec<u8>>) -> bool {
    match (low, high) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a >= b
        }
        _ => false,
    }
}

impl<'a, P: Pages + ?Sized> Range<'a, P> {
    /// Every key within `low..high` of `pages`.
    pub(crate) fn new(pages: &'a P, (low, high): (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Self {
        Range {
            pages,
            middle_done: crossed(&low, &high),
            low,
            high,
            front: VecDeque::new(),
            back: VecDeque::new(),
            page_keys: RANGE_PAGE_KEYS,
        }
    }

    /// Every key that begins with `prefix`.
    pub(crate) fn prefix(pages: &'a P, prefix: &[u8]) -> Self {
        let mut request = ScanRequest::new(Bound::Unbounded, Bound::Unbounded);
        request.within_prefix(prefix);
        Self::new(pages, (request.start, request.end))
    }

    /// Fetches `keys` entries per page instead of [`RANGE_PAGE_KEYS`]
    /// (at least 1).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// for i in 0..10 {
    ///     db.set(format!("k{i}"), i).await?;
    /// }
    /// assert_eq!(db.range::<&str>(..).page_keys(3).collect().await?.len(), 10);
    /// # Ok(())
    /// # }
    /// ```
    pub fn page_keys(mut self, keys: usize) -> Self {
        self.page_keys = keys.max(1);
        self
    }

    /// The next entry from the low end, `None` once every key was yielded.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// db.set("a", 1).await?;
    /// let mut range = db.range::<&str>(..);
    /// assert_eq!(range.next().await.transpose()?, Some((b"a".to_vec(), 1.into())));
    /// assert_eq!(range.next().await.transpose()?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(entry) = self.front.pop_front() {
                return Some(Ok(entry));
            }
            if self.middle_done {
                return self.back.pop_back().map(Ok);
            }
            if let Err(error) = self.fetch(false).await {
                return Some(Err(error));
            }
        }
    }

    /// The next entry from the high end, `None` once every key was
    /// yielded.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// db.set("a", 1).await?;
    /// db.set("b", 2).await?;
    /// let mut range = db.range::<&str>(..);
    /// assert_eq!(range.next_back().await.transpose()?.map(|(k, _)| k), Some(b"b".to_vec()));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next_back(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(entry) = self.back.pop_front() {
                return Some(Ok(entry));
            }
            if self.middle_done {
                return self.front.pop_back().map(Ok);
            }
            if let Err(error) = self.fetch(true).await {
                return Some(Err(error));
            }
        }
    }

    /// Every entry left, in key order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// db.set("a", 1).await?;
    /// assert_eq!(db.prefix("a").collect().await?, vec![(b"a".to_vec(), 1.into())]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn collect(mut self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        while let Some(entry) = self.next().await {
            out.push(entry?);
        }
        Ok(out)
    }

    /// The range as a stream, low end first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// use futures::TryStreamExt;
    /// db.set("a", 1).await?;
    /// db.set("b", 2).await?;
    /// let keys: Vec<_> = db.range::<&str>(..).into_stream().map_ok(|(k, _)| k).try_collect().await?;
    /// assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_stream(self) -> impl Stream<Item = Result<Entry>> + 'a {
        futures::stream::unfold(self, |mut range| async move {
            range.next().await.map(|entry| (entry, range))
        })
    }

    /// The range as a stream, high end first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// use futures::TryStreamExt;
    /// db.set("a", 1).await?;
    /// db.set("b", 2).await?;
    /// let keys: Vec<_> = db.range::<&str>(..).into_rev_stream().map_ok(|(k, _)| k).try_collect().await?;
    /// assert_eq!(keys, vec![b"b".to_vec(), b"a".to_vec()]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_rev_stream(self) -> impl Stream<Item = Result<Entry>> + 'a {
        futures::stream::unfold(self, |mut range| async move {
            range.next_back().await.map(|entry| (entry, range))
        })
    }

    /// One page from the middle, at its low end or (`reverse`) its high
    /// end; the middle narrows past it. An error ends the range.
    async fn fetch(&mut self, reverse: bool) -> Result<()> {
        let mut request = ScanRequest::new(self.low.clone(), self.high.clone());
        request.reverse = reverse;
        request.limit = self.page_keys;
        let page = match self.pages.page(&request).await {
            Ok(page) => page,
            Err(error) => {
                self.middle_done = true;
                self.front.clear();
                self.back.clear();
                return Err(error);
            }
        };
        if page.resume_after.is_none() {
            self.middle_done = true;
        }
        if let Some((last, _)) = page.entries.last() {
            let past = Bound::Excluded(last.clone());
            if reverse {
                self.high = past;
            } else {
                self.low = past;
            }
            self.middle_done |= crossed(&self.low, &self.high);
        } else {
            self.middle_done = true;
        }
        let entries = page
            .entries
            .into_iter()
            .filter_map(|(key, value)| value.map(|value| (key, value)));
        if reverse {
            self.back.extend(entries);
        } else {
            self.front.extend(entries);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Pages from a map, counting the requests.
    struct Map(BTreeMap<Vec<u8>, Value>, Mutex<u32>);

    impl Pages for Map {
        fn page(&self, request: &ScanRequest) -> impl Future<Output = Result<ScanPage>> + Send {
            *self.1.lock().expect("unpoisoned") += 1;
            let range = (request.start.clone(), request.end.clone());
            let mut entries: Vec<(Vec<u8>, Option<Value>)> = if request.reverse {
                self.0
                    .range(range)
                    .rev()
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect()
            } else {
                self.0
                    .range(range)
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect()
            };
            let more = entries.len() > request.limit;
            entries.truncate(request.limit);
            let resume_after = more
                .then(|| entries.last().map(|(k, _)| k.clone()))
                .flatten();
            std::future::ready(Ok(ScanPage {
                entries,
                resume_after,
            }))
        }
    }

    #[test]
    fn both_ends_meet_and_yield_every_key_once() {
        let map = Map(
            (0..23u8).map(|i| (vec![i], Value::Int(i.into()))).collect(),
            Mutex::new(0),
        );
        for page_keys in 1..8 {
            for pattern in 0..8u32 {
                let mut range =
                    Range::new(&map, (Bound::Unbounded, Bound::Unbounded)).page_keys(page_keys);
                let (mut low, mut high) = (Vec::new(), Vec::new());
                let mut turn = 0;
                futures::executor::block_on(async {
                    loop {
                        let from_back = (pattern >> (turn % 3)) & 1 == 1;
                        turn += 1;
                        let next = if from_back {
                            range.next_back().await
                        } else {
                            range.next().await
                        };
                        match next {
                            Some(entry) => {
                                let (key, _) = entry.expect("a page");
                                if from_back {
                                    high.push(key[0]);
                                } else {
                                    low.push(key[0]);
                                }
                            }
                            None => break,
                        }
                    }
                });
                high.reverse();
                low.extend(high);
                assert_eq!(low, (0..23).collect::<Vec<u8>>(), "pages of {page_keys}");
            }
        }
    }

    #[test]
    fn bounds_and_prefixes_narrow_the_walk_and_crossed_bounds_fetch_nothing() {
        let map = Map(
            [b"a1".as_slice(), b"b1", b"b2", b"c1"]
                .into_iter()
                .map(|k| (k.to_vec(), Value::Int(1)))
                .collect(),
            Mutex::new(0),
        );
        let keys = |range: Range<'_, Map>| {
            futures::executor::block_on(range.collect())
                .expect("pages")
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(Range::prefix(&map, b"b")),
            vec![b"b1".to_vec(), b"b2".to_vec()]
        );
        assert_eq!(
            keys(Range::new(
                &map,
                owned_bounds(&(b"a2".as_slice()..=b"b2".as_slice()))
            )),
            vec![b"b1".to_vec(), b"b2".to_vec()]
        );
        let before = *map.1.lock().expect("unpoisoned");
        assert!(
            keys(Range::new(
                &map,
                owned_bounds(&(b"c".as_slice()..b"a".as_slice()))
            ))
            .is_empty()
        );
        assert_eq!(
            *map.1.lock().expect("unpoisoned"),
            before,
            "crossed bounds read nothing"
        );
    }
}
