//! The CommandComplete tag of a statement that ran on several shards: the shards' tags
//! added up, so the client sees the rows of the whole statement.

/// `UPDATE 3` + `UPDATE 4` = `UPDATE 7`; `INSERT 0 2` + `INSERT 0 1` = `INSERT 0 3`.
pub fn sum_tags(tags: &[String]) -> String {
    let Some(first) = tags.first() else {
        return String::new();
    };
    let Some((prefix, _)) = first.rsplit_once(' ') else {
        return first.clone();
    };
    let mut total: u64 = 0;
    for t in tags {
        match t.rsplit_once(' ') {
            Some((p, n)) if p == prefix => match n.parse::<u64>() {
                Ok(n) => total += n,
                Err(_) => return first.clone(),
            },
            _ => return first.clone(),
        }
    }
    format!("{prefix} {total}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn tags_add_up() {
        let t = |v: &[&str]| super::sum_tags(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(t(&["UPDATE 3", "UPDATE 4"]), "UPDATE 7");
        assert_eq!(t(&["INSERT 0 2", "INSERT 0 1"]), "INSERT 0 3");
        assert_eq!(t(&["CREATE TABLE", "CREATE TABLE"]), "CREATE TABLE");
    }
}
