//! Lineage (数据血缘) per field: which department, sync run and library version supplied each
//! value of a record. Kept with the record in the serving index and in the library table's
//! `_lineage` column, so a record's fields can each be traced to their source.
//!
//! Text form (the `_lineage` column): the distinct origins as `source:run:version` joined by
//! `;`, a `|`, then per field the index of its origin or nothing for an empty field, joined by
//! `,` — `GAJ:3:5;MZJ:4:7|0,0,,1`.

use serde::{Deserialize, Serialize};

/// Who supplied a value: a department, in a run, committed at a library version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Origin {
    /// The supplying department's code.
    pub source: String,
    /// The sync run (0 for a manual correction or a materialization without a run).
    pub run: i64,
    /// The library version that committed the value.
    pub version: i64,
}

/// The origin of each field of a record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Lineage {
    origins: Vec<Origin>,
    fields: Vec<Option<u16>>,
}

impl Lineage {
    /// Every non-empty value of `values` from `origin`.
    pub fn uniform<S>(values: &[Option<S>], origin: Origin) -> Self {
        Self {
            fields: values.iter().map(|v| v.as_ref().map(|_| 0)).collect(),
            origins: vec![origin],
        }
    }

    /// The origin of field `i`, if known.
    pub fn field(&self, i: usize) -> Option<&Origin> {
        self.fields
            .get(i)
            .copied()
            .flatten()
            .and_then(|o| self.origins.get(usize::from(o)))
    }

    /// Sets field `i`'s origin (`None`: the field is empty).
    pub fn set(&mut self, i: usize, origin: Option<&Origin>) {
        if self.fields.len() <= i {
            self.fields.resize(i + 1, None);
        }
        self.fields[i] = origin.map(|origin| match self.origins.iter().position(|o| o == origin) {
            Some(p) => p as u16,
            None => {
                self.origins.push(origin.clone());
                (self.origins.len() - 1) as u16
            }
        });
    }

    /// Drops origins no field refers to any more.
    pub fn compact(&mut self) {
        let mut used: Vec<Option<u16>> = vec![None; self.origins.len()];
        let mut kept = Vec::new();
        for slot in self.fields.iter_mut().flatten() {
            let old = usize::from(*slot);
            *slot = *used[old].get_or_insert_with(|| {
                kept.push(self.origins[old].clone());
                (kept.len() - 1) as u16
            });
        }
        self.origins = kept;
    }

    /// The distinct origins.
    pub fn origins(&self) -> &[Origin] {
        &self.origins
    }

    /// The text form (see the module documentation).
    pub fn to_text(&self) -> String {
        let origins: Vec<String> = self
            .origins
            .iter()
            .map(|o| format!("{}:{}:{}", o.source, o.run, o.version))
            .collect();
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|f| f.map(|i| i.to_string()).unwrap_or_default())
            .collect();
        format!("{}|{}", origins.join(";"), fields.join(","))
    }

    /// Parses the text form; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let (origins, fields) = text.split_once('|')?;
        let origins = origins
            .split(';')
            .filter(|o| !o.is_empty())
            .map(|o| {
                let mut parts = o.rsplitn(3, ':');
                let version = parts.next()?.parse().ok()?;
                let run = parts.next()?.parse().ok()?;
                Some(Origin {
                    source: parts.next()?.to_string(),
                    run,
                    version,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let fields = if fields.is_empty() {
            Vec::new()
        } else {
            fields
                .split(',')
                .map(|f| {
                    if f.is_empty() {
                        Some(None)
                    } else {
                        f.parse().ok().map(Some)
                    }
                })
                .collect::<Option<Vec<_>>>()?
        };
        fields
            .iter()
            .flatten()
            .all(|&i| usize::from(i) < origins.len())
            .then_some(Self { origins, fields })
    }

    /// Appends the binary form to `out`: origin count (u16), each as source (u16 length +
    /// bytes), run and version (i64 LE); field count (u16), each a u16 origin index
    /// (`u16::MAX` for none).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.origins.len() as u16).to_le_bytes());
        for o in &self.origins {
            let source = &o.source.as_bytes()[..o.source.len().min(u16::MAX as usize)];
            out.extend_from_slice(&(source.len() as u16).to_le_bytes());
            out.extend_from_slice(source);
            out.extend_from_slice(&o.run.to_le_bytes());
            out.extend_from_slice(&o.version.to_le_bytes());
        }
        out.extend_from_slice(&(self.fields.len() as u16).to_le_bytes());
        for f in &self.fields {
            out.extend_from_slice(&f.unwrap_or(u16::MAX).to_le_bytes());
        }
    }

    /// Reads the binary form from the front of `bytes`; returns it and the rest.
    pub fn decode(bytes: &[u8]) -> Option<(Self, &[u8])> {
        fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            if bytes.len() < n {
                return None;
            }
            let (head, tail) = bytes.split_at(n);
            *bytes = tail;
            Some(head)
        }
        let mut b = bytes;
        let u16_at = |b: &mut &[u8]| take(b, 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
        let i64_at = |b: &mut &[u8]| take(b, 8).map(|s| i64::from_le_bytes(s.try_into().expect("8 bytes")));
        let n = u16_at(&mut b)?;
        let mut origins = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let len = u16_at(&mut b)?;
            let source = std::str::from_utf8(take(&mut b, usize::from(len))?).ok()?.to_string();
            let run = i64_at(&mut b)?;
            let version = i64_at(&mut b)?;
            origins.push(Origin { source, run, version });
        }
        let n = u16_at(&mut b)?;
        let mut fields = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let f = u16_at(&mut b)?;
            fields.push((f != u16::MAX).then_some(f));
        }
        Some((Self { origins, fields }, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(source: &str, run: i64, version: i64) -> Origin {
        Origin {
            source: source.into(),
            run,
            version,
        }
    }

    #[test]
    fn text_and_binary_forms_round_trip() {
        let values = vec![Some("k".to_string()), None, Some("v".to_string())];
        let mut lineage = Lineage::uniform(&values, origin("GAJ", 3, 5));
        lineage.set(1, Some(&origin("MZJ", 4, 7)));
        assert_eq!(lineage.to_text(), "GAJ:3:5;MZJ:4:7|0,1,0");
        assert_eq!(Lineage::parse(&lineage.to_text()), Some(lineage.clone()));
        let mut buf = vec![];
        lineage.encode(&mut buf);
        buf.push(42);
        let (back, rest) = Lineage::decode(&buf).unwrap();
        assert_eq!((back, rest), (lineage.clone(), &[42u8][..]));
        assert_eq!(lineage.field(1).unwrap().source, "MZJ");
        assert_eq!(Lineage::parse("GAJ:1:2|0,5"), None);
        assert_eq!(Lineage::parse("no bar"), None);
    }

    #[test]
    fn compact_drops_unused_origins() {
        let values = vec![Some("k".to_string()), Some("v".to_string())];
        let mut lineage = Lineage::uniform(&values, origin("GAJ", 1, 1));
        lineage.set(0, Some(&origin("MZJ", 2, 2)));
        lineage.set(1, Some(&origin("MZJ", 2, 2)));
        lineage.compact();
        assert_eq!(lineage.to_text(), "MZJ:2:2|0,0");
    }
}
