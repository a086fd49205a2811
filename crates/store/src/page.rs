//! Page-number pagination as the reference APIs define it.

/// A 1-based page of `per_page` rows, and how far the total behind it is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub per_page: u32,
    /// Count at most this many rows (or to the end of this page, if further) for the
    /// total; `None` counts them all (the APIs' exact `total`).
    pub count_cap: Option<u32>,
}

impl Page {
    pub fn new(page: u32, per_page: u32) -> Self {
        Self {
            page: page.max(1),
            per_page: per_page.max(1),
            count_cap: None,
        }
    }

    /// The same page with its total counted only up to `cap` rows: a screen that says
    /// "more than 10,000" need not count a million.
    pub fn counting_up_to(self, cap: u32) -> Self {
        Self {
            count_cap: Some(cap),
            ..self
        }
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.per_page)
    }

    pub fn limit(&self) -> i64 {
        i64::from(self.per_page)
    }

    pub fn total_pages(&self, count: i64) -> i64 {
        (count + i64::from(self.per_page) - 1) / i64::from(self.per_page)
    }

    /// The total when this page's own rows tell it: a short page that is not past the
    /// end of the list ends it.
    pub fn total_from(&self, rows: usize) -> Option<i64> {
        let rows = rows as i64;
        (rows < self.limit() && (rows > 0 || self.offset() == 0)).then(|| self.offset() + rows)
    }

    /// How many rows a capped count reads at most: one past the cap (or past the end of
    /// this page), so that a total that reaches it says "more".
    pub fn count_limit(&self) -> Option<i64> {
        self.count_cap
            .map(|cap| i64::from(cap).max(self.offset() + self.limit()) + 1)
    }

    /// Whether `total` is a capped count that stopped before the end: the real total is
    /// more than `total - 1`.
    pub fn is_more_than(&self, total: i64) -> bool {
        self.count_limit().is_some_and(|limit| total >= limit)
    }
}

impl crate::Store {
    /// The total of a page of a filtered list, `from` (tables) and `filter` (its ` WHERE
    /// …`) as the page's own query has them: the page's rows when they tell it, else
    /// counted, up to the page's `count_limit` when it has one.
    pub(crate) async fn page_total<F>(
        &self,
        page: Page,
        shown: usize,
        from: &str,
        filter: F,
    ) -> crate::Result<i64>
    where
        F: Fn(&mut crate::sql::QueryBuilder<'_>),
    {
        if let Some(total) = page.total_from(shown) {
            return Ok(total);
        }
        let mut count = match page.count_limit() {
            Some(_) => {
                crate::sql::QueryBuilder::new(format!("SELECT COUNT(*) FROM (SELECT 1 FROM {from}"))
            }
            None => crate::sql::QueryBuilder::new(format!("SELECT COUNT(*) FROM {from}")),
        };
        filter(&mut count);
        if let Some(limit) = page.count_limit() {
            count.push(" LIMIT ").push_bind(limit).push(") capped");
        }
        Ok(count.build_query_scalar().fetch_one(&self.read).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_page_is_its_own_total() {
        let first = Page::new(1, 50);
        assert_eq!(first.total_from(0), Some(0));
        assert_eq!(first.total_from(11), Some(11));
        assert_eq!(first.total_from(50), None);
        let third = Page::new(3, 50);
        assert_eq!(third.total_from(7), Some(107));
        // Past the end: the rows say nothing of how many there are.
        assert_eq!(third.total_from(0), None);
    }

    #[test]
    fn a_capped_count_reaches_past_its_page() {
        let page = Page::new(1, 50);
        assert_eq!(page.count_limit(), None);
        assert!(!page.is_more_than(1_000_000));
        let capped = page.counting_up_to(10_000);
        assert_eq!(capped.count_limit(), Some(10_001));
        assert!(capped.is_more_than(10_001));
        assert!(!capped.is_more_than(10_000));
        let deep = Page::new(300, 50).counting_up_to(10_000);
        assert_eq!(deep.count_limit(), Some(15_001));
    }
}
