//! Reports (`GET /admin/v1/reports/{conversations|csat|volume}?from=&to=&groupBy=`): figures
//! over the conversations opened in a period, grouped by day, agent, queue, rule or tag.
//!
//! Every figure comes from what a conversation's own record keeps, updated by the events as
//! they happen (its first agent message, its assignment, its close, its survey answer, its
//! message counts): a report reads the conversations opened in the period by the index of their
//! day, never a transcript. The aggregation here is pure.

use crate::audit::utc_day;
use crate::conversation::{Conversation, ConversationState};
use serde::Serialize;
use std::collections::BTreeMap;

/// The longest period one report covers (days).
pub const REPORT_MAX_DAYS: i64 = 92;
/// The most conversations one report reads; past it the report says `truncated`.
pub const REPORT_MAX_CONVERSATIONS: usize = 50_000;
/// The group of a conversation without one (no agent, no queue, no rule, no tag).
pub const NONE_GROUP: &str = "(none)";

const DAY_MS: i64 = 86_400_000;

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// Counts, first-response and handle times.
    Conversations,
    /// Survey answers: count, average, distribution.
    Csat,
    /// Conversations and messages in and out.
    Volume,
}

impl ReportKind {
    pub fn parse(s: &str) -> Option<ReportKind> {
        match s {
            "conversations" => Some(ReportKind::Conversations),
            "csat" => Some(ReportKind::Csat),
            "volume" => Some(ReportKind::Volume),
            _ => None,
        }
    }
}

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Day,
    Agent,
    Queue,
    Rule,
    Tag,
}

impl GroupBy {
    pub fn parse(s: &str) -> Option<GroupBy> {
        match s {
            "day" => Some(GroupBy::Day),
            "agent" => Some(GroupBy::Agent),
            "queue" => Some(GroupBy::Queue),
            "rule" => Some(GroupBy::Rule),
            "tag" => Some(GroupBy::Tag),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Day => "day",
            GroupBy::Agent => "agent",
            GroupBy::Queue => "queue",
            GroupBy::Rule => "rule",
            GroupBy::Tag => "tag",
        }
    }

    /// The groups `c` counts in: one, or each of its tags.
    fn keys(self, c: &Conversation) -> Vec<String> {
        let one = |v: Option<&String>| vec![v.cloned().unwrap_or_else(|| NONE_GROUP.to_owned())];
        match self {
            GroupBy::Day => vec![utc_day(c.opened_at)],
            GroupBy::Agent => one(c.agent_id.as_ref()),
            GroupBy::Queue => one(c.queue_id.as_ref()),
            GroupBy::Rule => one(c.rule_id.as_ref()),
            GroupBy::Tag if c.tags.is_empty() => vec![NONE_GROUP.to_owned()],
            GroupBy::Tag => c.tags.clone(),
        }
    }
}

/// The starts (epoch ms) of the UTC days from `from` to `to` (epoch ms, inclusive), oldest
/// first; `None` when `to` is before `from` or the period is longer than [`REPORT_MAX_DAYS`].
pub fn report_days(from: i64, to: i64) -> Option<Vec<i64>> {
    let (first, last) = (from.div_euclid(DAY_MS), to.div_euclid(DAY_MS));
    if to < from || last - first >= REPORT_MAX_DAYS {
        return None;
    }
    Some((first..=last).map(|day| day * DAY_MS).collect())
}

/// The length of a day, in ms.
pub const DAY_LENGTH_MS: i64 = DAY_MS;

/// Durations' count and percentiles (nearest rank), in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Durations {
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_ms: Option<i64>,
}

impl Durations {
    fn of(mut values: Vec<i64>) -> Durations {
        values.sort_unstable();
        Durations {
            count: values.len() as u64,
            p50_ms: percentile(&values, 50),
            p90_ms: percentile(&values, 90),
        }
    }
}

/// The nearest-rank percentile `p` of sorted `values`.
pub fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// One group's figures; which are present depends on the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportRow {
    pub key: String,
    /// Conversations opened in the period (in this group).
    pub conversations: u64,
    // conversations
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_response: Option<Durations>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle_time: Option<Durations>,
    // csat
    #[serde(skip_serializing_if = "Option::is_none")]
    pub surveys_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responses: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average: Option<f64>,
    /// Answers per score (`"1"` … `"10"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribution: Option<BTreeMap<String, u64>>,
    // volume
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_out: Option<u64>,
}

#[derive(Default)]
struct Acc {
    conversations: u64,
    closed: u64,
    first_response: Vec<i64>,
    handle: Vec<i64>,
    sent: u64,
    scores: Vec<u8>,
    messages_in: u64,
    messages_out: u64,
}

/// The rows of `kind` over `conversations`, grouped by `group_by`, ordered by key.
pub fn aggregate(
    kind: ReportKind,
    group_by: GroupBy,
    conversations: &[Conversation],
) -> Vec<ReportRow> {
    let mut groups: BTreeMap<String, Acc> = BTreeMap::new();
    for c in conversations {
        for key in group_by.keys(c) {
            let a = groups.entry(key).or_default();
            a.conversations += 1;
            if c.state == ConversationState::Closed {
                a.closed += 1;
            }
            if let Some(at) = c.first_response_at {
                a.first_response.push((at - c.opened_at).max(0));
            }
            if let (Some(start), Some(end)) = (c.assigned_at, c.closed_at) {
                a.handle.push((end - start).max(0));
            }
            if let Some(survey) = &c.survey {
                a.sent += 1;
                if let Some(score) = survey.score {
                    a.scores.push(score);
                }
            }
            a.messages_in += u64::from(c.messages_in);
            a.messages_out += u64::from(c.messages_out);
        }
    }
    groups
        .into_iter()
        .map(|(key, a)| {
            let mut row = ReportRow {
                key,
                conversations: a.conversations,
                ..ReportRow::default()
            };
            match kind {
                ReportKind::Conversations => {
                    row.closed = Some(a.closed);
                    row.first_response = Some(Durations::of(a.first_response));
                    row.handle_time = Some(Durations::of(a.handle));
                }
                ReportKind::Csat => {
                    let responses = a.scores.len() as u64;
                    row.surveys_sent = Some(a.sent);
                    row.responses = Some(responses);
                    row.average = (responses > 0).then(|| {
                        let sum: u64 = a.scores.iter().map(|s| u64::from(*s)).sum();
                        ((sum as f64 / responses as f64) * 100.0).round() / 100.0
                    });
                    let mut distribution = BTreeMap::new();
                    for s in &a.scores {
                        *distribution.entry(format!("{s}")).or_insert(0) += 1;
                    }
                    row.distribution = Some(distribution);
                }
                ReportKind::Volume => {
                    row.messages_in = Some(a.messages_in);
                    row.messages_out = Some(a.messages_out);
                }
            }
            row
        })
        .collect()
}

/// The rows as CSV (RFC 4180: a header line, CRLF line ends, fields quoted when needed).
pub fn to_csv(kind: ReportKind, group_by: GroupBy, rows: &[ReportRow]) -> String {
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut header = vec![group_by.as_str().to_owned(), "conversations".to_owned()];
    let scores: Vec<String> = match kind {
        ReportKind::Csat => {
            let mut all: Vec<u8> = rows
                .iter()
                .flat_map(|r| r.distribution.iter().flatten())
                .filter_map(|(k, _)| k.parse().ok())
                .collect();
            all.sort_unstable();
            all.dedup();
            all.iter().map(|s| s.to_string()).collect()
        }
        _ => Vec::new(),
    };
    match kind {
        ReportKind::Conversations => header.extend(
            [
                "closed",
                "firstResponseCount",
                "firstResponseP50Ms",
                "firstResponseP90Ms",
                "handleTimeCount",
                "handleTimeP50Ms",
                "handleTimeP90Ms",
            ]
            .map(String::from),
        ),
        ReportKind::Csat => {
            header.extend(["surveysSent", "responses", "average"].map(String::from));
            header.extend(scores.iter().map(|s| format!("score{s}")));
        }
        ReportKind::Volume => header.extend(["messagesIn", "messagesOut"].map(String::from)),
    }
    let mut out = header.join(",") + "\r\n";
    for r in rows {
        let mut fields = vec![csv_field(&r.key), r.conversations.to_string()];
        match kind {
            ReportKind::Conversations => {
                let f = r.first_response.clone().unwrap_or_default();
                let h = r.handle_time.clone().unwrap_or_default();
                fields.extend([
                    r.closed.unwrap_or(0).to_string(),
                    f.count.to_string(),
                    opt(f.p50_ms),
                    opt(f.p90_ms),
                    h.count.to_string(),
                    opt(h.p50_ms),
                    opt(h.p90_ms),
                ]);
            }
            ReportKind::Csat => {
                fields.extend([
                    r.surveys_sent.unwrap_or(0).to_string(),
                    r.responses.unwrap_or(0).to_string(),
                    r.average.map(|a| a.to_string()).unwrap_or_default(),
                ]);
                for s in &scores {
                    let n = r.distribution.as_ref().and_then(|d| d.get(s)).copied();
                    fields.push(n.unwrap_or(0).to_string());
                }
            }
            ReportKind::Volume => fields.extend([
                r.messages_in.unwrap_or(0).to_string(),
                r.messages_out.unwrap_or(0).to_string(),
            ]),
        }
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A CSV field, quoted when it holds a comma, quote or line break; a leading `=`, `+`, `-`, `@`,
/// tab or carriage return is escaped so that a spreadsheet does not take a tag for a formula.
fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::SourceType;
    use crate::conversation::SurveyState;

    fn conv(id: &str, opened: i64) -> Conversation {
        Conversation::opened(
            id.to_owned(),
            "acc",
            SourceType::User,
            "U1",
            ConversationState::Waiting,
            opened,
        )
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 50), Some(5));
        assert_eq!(percentile(&v, 90), Some(9));
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn a_period_names_its_days_and_is_bounded() {
        let days: Vec<String> = report_days(1_796_600_000_000, 1_796_688_000_000)
            .unwrap()
            .into_iter()
            .map(utc_day)
            .collect();
        assert_eq!(days, ["2026-12-06", "2026-12-07", "2026-12-08"]);
        assert!(report_days(10, 5).is_none());
        assert!(report_days(0, REPORT_MAX_DAYS * DAY_MS).is_none());
        assert_eq!(
            report_days(0, (REPORT_MAX_DAYS - 1) * DAY_MS)
                .unwrap()
                .len(),
            92
        );
    }

    #[test]
    fn conversations_times_and_csat_add_up_per_group() {
        let mut a = conv("a", 1_000);
        a.agent_id = Some("ag1".into());
        a.assigned_at = Some(2_000);
        a.first_response_at = Some(4_000);
        a.state = ConversationState::Closed;
        a.closed_at = Some(62_000);
        a.survey = Some(SurveyState {
            sent_at: 62_000,
            scale: Some(5),
            score: Some(5),
            answered_at: Some(63_000),
        });
        a.tags = vec!["vip".into(), "refund".into()];
        a.messages_in = 3;
        a.messages_out = 2;
        let mut b = conv("b", 2_000);
        b.agent_id = Some("ag1".into());
        b.assigned_at = Some(2_000);
        b.first_response_at = Some(12_000);
        b.state = ConversationState::Closed;
        b.closed_at = Some(22_000);
        b.survey = Some(SurveyState {
            sent_at: 22_000,
            scale: Some(5),
            score: Some(2),
            answered_at: Some(23_000),
        });
        b.tags = vec!["refund".into()];
        let c = conv("c", 3_000);

        let rows = aggregate(
            ReportKind::Conversations,
            GroupBy::Agent,
            &[a.clone(), b.clone(), c.clone()],
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].key, NONE_GROUP);
        assert_eq!(rows[0].conversations, 1);
        assert_eq!(rows[0].closed, Some(0));
        let ag1 = &rows[1];
        assert_eq!(
            (ag1.key.as_str(), ag1.conversations, ag1.closed),
            ("ag1", 2, Some(2))
        );
        let frt = ag1.first_response.clone().unwrap();
        assert_eq!(
            (frt.count, frt.p50_ms, frt.p90_ms),
            (2, Some(3_000), Some(10_000))
        );
        let handle = ag1.handle_time.clone().unwrap();
        assert_eq!(
            (handle.count, handle.p50_ms, handle.p90_ms),
            (2, Some(20_000), Some(60_000))
        );

        let csat = aggregate(
            ReportKind::Csat,
            GroupBy::Tag,
            &[a.clone(), b.clone(), c.clone()],
        );
        let keys: Vec<&str> = csat.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(
            keys,
            [NONE_GROUP, "refund", "vip"],
            "a conversation counts in each tag"
        );
        let refund = &csat[1];
        assert_eq!(refund.responses, Some(2));
        assert_eq!(refund.average, Some(3.5));
        assert_eq!(
            refund.distribution.clone().unwrap(),
            BTreeMap::from([("2".to_owned(), 1), ("5".to_owned(), 1)])
        );
        assert!(
            refund.first_response.is_none(),
            "only the report's own figures"
        );

        let volume = aggregate(ReportKind::Volume, GroupBy::Day, &[a, b, c]);
        assert_eq!(volume.len(), 1);
        assert_eq!(volume[0].key, "1970-01-01");
        assert_eq!(
            (volume[0].messages_in, volume[0].messages_out),
            (Some(3), Some(2))
        );

        let csv = to_csv(ReportKind::Csat, GroupBy::Tag, &csat);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "tag,conversations,surveysSent,responses,average,score2,score5"
        );
        assert_eq!(lines[2], "refund,2,2,2,3.5,1,1");
    }

    #[test]
    fn csv_fields_are_quoted_and_not_formulas() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("\tx"), "'\tx");
        assert_eq!(csv_field("plain"), "plain");
    }
}
