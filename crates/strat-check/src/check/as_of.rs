//! `as of T by COLUMN [within N days|hours] [ties by COLUMN [desc]]`
//! (spec §4.5): the checks, and the window as a predicate over `COLUMN`
//! with literal bounds of its own type, computed here once so that the
//! engine and the SQL export filter the same rows.

use chrono::{Duration, NaiveDate, NaiveDateTime};

use super::{Checker, a};
use crate::ir::{self, BinaryOp, ExprKind};
use crate::types::{Column, Type, Value};
use strat_syntax::{Diagnostic, ast};

impl Checker<'_> {
    pub(super) fn as_of(
        &mut self,
        clause: &ast::AsOf,
        st: &ast::Statement,
        cols: Option<&[Column]>,
    ) -> Option<ir::AsOf> {
        if st.unit.is_none() {
            self.err(
                Diagnostic::error("E0136", "`as of` needs a `unit` column")
                    .at(clause.span)
                    .with_label("a state is one row per unit")
                    .with_help("add `unit COLUMN` (e.g. `unit member_id`): `as of` picks each unit's latest row at T"),
            );
        }
        let at = self.as_of_time(&clause.at)?;
        let by = self.column(&clause.by, cols);
        let within = clause.within.as_ref().and_then(|w| {
            let n = self.int_value(&w.amount, "within")?;
            if n == 0 {
                self.err(
                    Diagnostic::error("E0137", "`within 0` keeps no row")
                        .at(w.span)
                        .with_help("give a window of at least 1 day or 1 hour, or drop `within`"),
                );
                return None;
            }
            Some((n, w.hours, w))
        });
        let ties = clause.ties.as_ref().and_then(|t| {
            let c = self.column(&t.column, cols)?;
            if matches!(c.ty, Type::Other(_)) {
                self.err(
                    Diagnostic::error("E0137", format!("`ties by {}` needs a column with an order, but it is {}", c.name, a(&c.ty)))
                        .at(t.column.span)
                        .with_help("order tied rows by a number, a string, a date or a timestamp, e.g. the time each row was loaded"),
                );
                return None;
            }
            Some(ir::Ties {
                column: c,
                desc: t.desc,
            })
        });
        let by = by?;
        if !matches!(by.ty, Type::Date | Type::Timestamp) {
            self.err(
                Diagnostic::error(
                    "E0137",
                    format!(
                        "`as of … by {}` needs a date or timestamp column, but it is {}",
                        by.name,
                        a(&by.ty)
                    ),
                )
                .at(clause.by.span)
                .with_label("the time each row describes")
                .with_help("name the column that holds each row's snapshot date or time"),
            );
            return None;
        }
        if let Some((_, true, w)) = within
            && by.ty == Type::Date
        {
            self.err(
                Diagnostic::error(
                    "E0137",
                    format!("`{}` is a date column: it has no hours", by.name),
                )
                .at(w.span)
                .with_help(
                    "write the window in days (`within 2 days`), or order by a timestamp column",
                ),
            );
            return None;
        }
        if st.unit.is_none() || (clause.within.is_some() && within.is_none()) {
            return None;
        }
        let window = match window(&at, &by, within.map(|(n, hours, _)| (n, hours))) {
            Ok(w) => w,
            Err(message) => {
                self.err(
                    Diagnostic::error("E0137", message)
                        .at(clause.span)
                        .with_help("use a window that stays within the years 1 to 9999"),
                );
                return None;
            }
        };
        Some(ir::AsOf {
            at,
            by,
            window,
            within: within.map(|(n, hours, _)| {
                let unit = if hours { "hour" } else { "day" };
                format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
            }),
            ties,
        })
    }

    /// `T`: a date or timestamp literal, or a param holding one.
    fn as_of_time(&mut self, t: &ast::AsOfTime) -> Option<Value> {
        let value = match t {
            ast::AsOfTime::Literal(l) => self.literal(l)?,
            ast::AsOfTime::Param(p) => match self.params.get(&p.name) {
                Some(param) => param.value.clone(),
                None => {
                    self.unknown_param(p);
                    return None;
                }
            },
        };
        if matches!(value, Value::Date(_) | Value::Timestamp(_)) {
            return Some(value);
        }
        self.err(
            Diagnostic::error(
                "E0137",
                format!(
                    "`as of` needs a date or a timestamp, but this is {}",
                    a(&value.ty())
                ),
            )
            .at(t.span())
            .with_help(
                "write a date such as `@2018-06-01`, or declare the param as `date` or `timestamp`",
            ),
        );
        None
    }
}

const DATE: &str = "%Y-%m-%d";
const TIMESTAMP: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// The rows in the window of `as of at by by [within n days|hours]`, as
/// `by` against bounds of `by`'s type (spec §4.5):
/// - a timestamp `T`: `by ≤ T` and `by > T − N`; against a date column a
///   date stands for its midnight, so the bounds are dates: `by ≤ date(T)`
///   and `by > date(T − N)`;
/// - a date `T` against a date column: `by ≤ T` and `by > T − N days`;
/// - a date `T` against a timestamp column stands for the whole day: the
///   window ends before `T + 1 day`, and starts `N` before that end.
pub(super) fn window(
    at: &Value,
    by: &Column,
    within: Option<(u64, bool)>,
) -> Result<ir::Expr, String> {
    let out_of_range = || format!("the `as of` window of {at} is outside the years 1 to 9999");
    let span = |n: u64, hours: bool| {
        let n = i64::try_from(n).ok()?;
        if hours {
            Duration::try_hours(n)
        } else {
            Duration::try_days(n)
        }
    };
    let before = |end: NaiveDateTime, (n, hours): (u64, bool)| {
        span(n, hours)
            .and_then(|d| end.checked_sub_signed(d))
            .filter(|t| t.and_utc().timestamp() > MIN_SECONDS)
    };
    let (upper, lower) = match (at, &by.ty) {
        (Value::Date(d), Type::Date) => {
            let t = date(d)?;
            let midnight = t.and_hms_opt(0, 0, 0).ok_or_else(out_of_range)?;
            let lower = within
                .map(|w| {
                    before(midnight, w)
                        .map(|x| x.date())
                        .ok_or_else(out_of_range)
                })
                .transpose()?;
            (
                (BinaryOp::LtEq, Value::Date(d.clone())),
                lower.map(|l| (BinaryOp::Gt, Value::Date(l.format(DATE).to_string()))),
            )
        }
        (Value::Date(d), _) => {
            let end = date(d)?
                .succ_opt()
                .ok_or_else(out_of_range)?
                .and_hms_opt(0, 0, 0)
                .ok_or_else(out_of_range)?;
            let lower = within
                .map(|w| before(end, w).ok_or_else(out_of_range))
                .transpose()?;
            (
                (BinaryOp::Lt, stamp(end)),
                lower.map(|l| (BinaryOp::GtEq, stamp(l))),
            )
        }
        (Value::Timestamp(t), Type::Date) => {
            let t = timestamp(t)?;
            let lower = within
                .map(|w| before(t, w).ok_or_else(out_of_range))
                .transpose()?;
            let day = |x: NaiveDateTime| Value::Date(x.date().format(DATE).to_string());
            (
                (BinaryOp::LtEq, day(t)),
                lower.map(|l| (BinaryOp::Gt, day(l))),
            )
        }
        (Value::Timestamp(text), _) => {
            let t = timestamp(text)?;
            let lower = within
                .map(|w| before(t, w).ok_or_else(out_of_range))
                .transpose()?;
            (
                (BinaryOp::LtEq, Value::Timestamp(text.clone())),
                lower.map(|l| (BinaryOp::Gt, stamp(l))),
            )
        }
        _ => return Err(format!("`as of` needs a date or a timestamp, not {at}")),
    };
    let compare = |(op, v): (BinaryOp, Value)| ir::Expr {
        kind: ExprKind::Binary {
            op,
            left: Box::new(ir::Expr {
                kind: ExprKind::Column(by.name.clone()),
                ty: by.ty.clone(),
            }),
            right: Box::new(ir::Expr {
                kind: ExprKind::Literal(v.clone()),
                ty: v.ty(),
            }),
        },
        ty: Type::Bool,
    };
    Ok(match lower {
        None => compare(upper),
        Some(lower) => ir::Expr {
            kind: ExprKind::Binary {
                op: BinaryOp::And,
                left: Box::new(compare(upper)),
                right: Box::new(compare(lower)),
            },
            ty: Type::Bool,
        },
    })
}

/// 0001-01-01T00:00:00 in seconds since 1970: no bound before the year 1.
const MIN_SECONDS: i64 = -62_135_596_800;

fn date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, DATE).map_err(|_| format!("`@{text}` is not a date"))
}

fn timestamp(text: &str) -> Result<NaiveDateTime, String> {
    NaiveDateTime::parse_from_str(text, TIMESTAMP)
        .map_err(|_| format!("`@{text}` is not a timestamp"))
}

fn stamp(t: NaiveDateTime) -> Value {
    Value::Timestamp(t.format(TIMESTAMP).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(at: Value, ty: Type, within: Option<(u64, bool)>) -> String {
        let w = window(&at, &Column::new("t", ty), within).unwrap();
        let side = |e: &ir::Expr| match &e.kind {
            ExprKind::Binary { op, right, .. } => match &right.kind {
                ExprKind::Literal(v) => format!("t {} {v}", op.as_str()),
                _ => unreachable!(),
            },
            _ => unreachable!(),
        };
        match &w.kind {
            ExprKind::Binary {
                op: BinaryOp::And,
                left,
                right,
                ..
            } => format!("{} and {}", side(left), side(right)),
            _ => side(&w),
        }
    }

    #[test]
    fn a_date_against_dates_keeps_t_and_drops_t_minus_n() {
        let at = Value::Date("2018-06-01".into());
        assert_eq!(bounds(at.clone(), Type::Date, None), "t <= @2018-06-01");
        assert_eq!(
            bounds(at, Type::Date, Some((30, false))),
            "t <= @2018-06-01 and t > @2018-05-02"
        );
    }

    #[test]
    fn a_date_against_timestamps_is_the_whole_day() {
        let at = Value::Date("2018-06-01".into());
        assert_eq!(
            bounds(at.clone(), Type::Timestamp, None),
            "t < @2018-06-02T00:00:00"
        );
        assert_eq!(
            bounds(at.clone(), Type::Timestamp, Some((30, false))),
            "t < @2018-06-02T00:00:00 and t >= @2018-05-03T00:00:00"
        );
        assert_eq!(
            bounds(at, Type::Timestamp, Some((6, true))),
            "t < @2018-06-02T00:00:00 and t >= @2018-06-01T18:00:00"
        );
    }

    #[test]
    fn a_timestamp_against_timestamps_and_dates() {
        let at = Value::Timestamp("2018-06-01T12:30:00.25".into());
        assert_eq!(
            bounds(at.clone(), Type::Timestamp, Some((2, true))),
            "t <= @2018-06-01T12:30:00.25 and t > @2018-06-01T10:30:00.250"
        );
        // A date is its midnight: 06-01 00:00 ≤ T; 05-31 00:00 > T − 1 day is false.
        assert_eq!(
            bounds(at, Type::Date, Some((1, false))),
            "t <= @2018-06-01 and t > @2018-05-31"
        );
    }

    #[test]
    fn windows_before_the_year_1_are_refused() {
        let at = Value::Date("0001-01-05".into());
        assert!(window(&at, &Column::new("t", Type::Date), Some((10, false))).is_err());
        assert!(window(&at, &Column::new("t", Type::Date), Some((u64::MAX, false))).is_err());
    }
}
