//! The `SearchQuery` and `OrderBy` of the Cryptolens `product/GetKeys` method: the LINQ-like
//! filter Cryptolens documents for its product page and API, parsed here into a typed tree
//! that the store turns into parameterised SQL. Nothing a caller writes ever becomes SQL text:
//! field names select from a fixed list, and every value is a bound parameter.
//!
//! The language, as Cryptolens documents it (names of fields, functions and keywords in any
//! case):
//!
//! - fields: `ID`, `Key`, `Notes`, `Block`, `F1`..`F8`, `Expires`, `Created`, `Period`,
//!   `MaxNoOfMachines`, `TrialActivation`, `Customer.Id`, `Customer.Name`, `Customer.Email`,
//!   `Customer.CompanyName`, `Customer.Created`;
//! - comparisons `=`/`==`, `!=`/`<>`, `<`, `<=`, `>`, `>=` with a value on the right: a number,
//!   a text in double (or single) quotes with `\"` and `\\` escapes, `true`/`false`, or a date;
//!   order comparisons only for numbers and dates;
//! - `Key.Contains("…")`, `Notes.Contains("…")` and the customer's texts likewise;
//! - a flag on its own (`Block`, `F3`, `!TrialActivation`) means it is set;
//! - `&&`/`and`, `||`/`or`, `!`/`not`, parentheses.
//!
//! Dates: `DateTime(2015,01,01)` is a whole day (UTC), and so are `today`, `yesterday`,
//! `tomorrow`, `monthback` and `monthforward` (a month before or after today). Compared with a
//! day, `=` means "during that day", `<` "before it began", `<=` "before it ended", `>` "after
//! it ended" and `>=` "since it began", so `created = today` finds the keys created today.
//! `DateTime(2015,01,01,12,30,00)` is an instant and compares as one.
//!
//! Queries are bounded ([`MAX_QUERY_CHARS`], [`MAX_DEPTH`], [`MAX_TERMS`]) so that no input can
//! exhaust the stack or build an unbounded statement, and every failure is an error naming the
//! character where the query went wrong, never a panic. The parser reads the clock only through
//! the `today` it is given.

use chrono::{DateTime, Days, Months, NaiveDate, NaiveTime, Utc};

use crate::DomainError;

/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 2000;
/// How deeply parentheses and negations may nest.
pub const MAX_DEPTH: usize = 32;
/// Comparisons in one query (each is one or two bound parameters).
pub const MAX_TERMS: usize = 200;

/// A property of a license the query can look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Id,
    Key,
    Notes,
    Block,
    /// F1..F8: the product's first eight features.
    Feature(u8),
    Expires,
    Created,
    Period,
    MaxNoOfMachines,
    TrialActivation,
    CustomerId,
    CustomerName,
    CustomerEmail,
    CustomerCompany,
    CustomerCreated,
}

/// What kind of value a field holds, which decides the comparisons it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Number,
    Text,
    Flag,
    Date,
}

impl Field {
    pub fn kind(self) -> FieldKind {
        use Field::*;
        match self {
            Id | Period | MaxNoOfMachines | CustomerId => FieldKind::Number,
            Key | Notes | CustomerName | CustomerEmail | CustomerCompany => FieldKind::Text,
            Block | Feature(_) | TrialActivation => FieldKind::Flag,
            Expires | Created | CustomerCreated => FieldKind::Date,
        }
    }

    /// The field a (dotted) name denotes, in any case.
    fn named(path: &[String]) -> Option<Self> {
        let lower: Vec<String> = path.iter().map(|p| p.to_ascii_lowercase()).collect();
        let parts: Vec<&str> = lower.iter().map(String::as_str).collect();
        Some(match parts.as_slice() {
            ["id"] => Field::Id,
            ["key"] => Field::Key,
            ["notes"] => Field::Notes,
            ["block"] => Field::Block,
            ["expires"] => Field::Expires,
            ["created"] => Field::Created,
            ["period"] => Field::Period,
            ["maxnoofmachines"] => Field::MaxNoOfMachines,
            ["trialactivation"] => Field::TrialActivation,
            ["customer", "id"] => Field::CustomerId,
            ["customer", "name"] => Field::CustomerName,
            ["customer", "email"] => Field::CustomerEmail,
            ["customer", "companyname"] => Field::CustomerCompany,
            ["customer", "created"] => Field::CustomerCreated,
            [f] if f.len() == 2 && f.starts_with('f') => match f.as_bytes()[1] {
                n @ b'1'..=b'8' => Field::Feature(n - b'0'),
                _ => return None,
            },
            _ => return None,
        })
    }

    /// The name as Cryptolens writes it, for messages.
    pub fn name(self) -> String {
        use Field::*;
        match self {
            Id => "ID".into(),
            Key => "Key".into(),
            Notes => "Notes".into(),
            Block => "Block".into(),
            Feature(n) => format!("F{n}"),
            Expires => "Expires".into(),
            Created => "Created".into(),
            Period => "Period".into(),
            MaxNoOfMachines => "MaxNoOfMachines".into(),
            TrialActivation => "TrialActivation".into(),
            CustomerId => "Customer.Id".into(),
            CustomerName => "Customer.Name".into(),
            CustomerEmail => "Customer.Email".into(),
            CustomerCompany => "Customer.CompanyName".into(),
            CustomerCreated => "Customer.Created".into(),
        }
    }
}

const KNOWN_FIELDS: &str = "ID, Key, Notes, Block, F1..F8, Expires, Created, Period, \
     MaxNoOfMachines, TrialActivation, Customer.Id, Customer.Name, Customer.Email, \
     Customer.CompanyName, Customer.Created";

/// Documented by Cryptolens but not offered by this server, so named in the error.
const UNSUPPORTED: [&str; 5] = [
    "activatedmachines",
    "dataobjects",
    "resellerid",
    "allowedmachines",
    "automaticactivation",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Comparison {
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Eq => "==",
            Comparison::Ne => "!=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
        }
    }

    fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Comparison::Eq => ord == Equal,
            Comparison::Ne => ord != Equal,
            Comparison::Lt => ord == Less,
            Comparison::Le => ord != Greater,
            Comparison::Gt => ord == Greater,
            Comparison::Ge => ord != Less,
        }
    }
}

/// A value a field is compared with; always of the field's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Number(i64),
    Text(String),
    Flag(bool),
    Date(DateTime<Utc>),
}

/// A parsed query. Built only by [`parse`], so every comparison pairs a field with a value of
/// its kind and an operator that kind allows (texts and flags: `==` and `!=` only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFilter {
    Compare {
        field: Field,
        op: Comparison,
        value: Operand,
    },
    /// A text field contains the text (case-sensitively).
    Contains {
        field: Field,
        text: String,
    },
    Not(Box<KeyFilter>),
    /// Every one holds.
    All(Vec<KeyFilter>),
    /// At least one holds.
    Any(Vec<KeyFilter>),
}

/// What a license shows to a query, for evaluating one in memory (the store evaluates the same
/// rules in SQL; this is their reference).
#[derive(Debug, Clone)]
pub struct KeyFacts<'a> {
    pub id: i64,
    pub key: &'a str,
    pub notes: &'a str,
    pub block: bool,
    pub features: [bool; 8],
    /// As replies show it: a license without an end shows a far expiry.
    pub expires: DateTime<Utc>,
    pub created: DateTime<Utc>,
    pub period: i64,
    pub max_no_of_machines: i64,
    pub trial_activation: bool,
    pub customer: Option<CustomerFacts<'a>>,
}

#[derive(Debug, Clone)]
pub struct CustomerFacts<'a> {
    pub id: i64,
    pub name: &'a str,
    /// `""` when the customer has none, as replies show it.
    pub email: &'a str,
    pub company: &'a str,
    pub created: DateTime<Utc>,
}

impl KeyFilter {
    /// Whether a license with these facts matches.
    pub fn matches(&self, k: &KeyFacts<'_>) -> bool {
        match self {
            KeyFilter::Not(inner) => !inner.matches(k),
            KeyFilter::All(all) => all.iter().all(|f| f.matches(k)),
            KeyFilter::Any(any) => any.iter().any(|f| f.matches(k)),
            KeyFilter::Contains { field, text } => match text_of(*field, k) {
                Some(value) => value.contains(text.as_str()),
                None => false,
            },
            KeyFilter::Compare { field, op, value } => {
                let customer = k.customer.as_ref();
                match (field, value) {
                    (Field::CustomerId, Operand::Number(n)) => {
                        op.holds(customer.map_or(0, |c| c.id).cmp(n))
                    }
                    (Field::CustomerCreated, Operand::Date(d)) => match customer {
                        Some(c) => op.holds(c.created.cmp(d)),
                        None => *op == Comparison::Ne,
                    },
                    (f, Operand::Text(t)) => match text_of(*f, k) {
                        Some(value) => op.holds(value.cmp(t.as_str())),
                        // No customer: nothing of it equals anything.
                        None => *op == Comparison::Ne,
                    },
                    (f, Operand::Number(n)) => op.holds(number_of(*f, k).cmp(n)),
                    (f, Operand::Flag(b)) => op.holds(flag_of(*f, k).cmp(b)),
                    (f, Operand::Date(d)) => op.holds(date_of(*f, k).cmp(d)),
                }
            }
        }
    }

    /// Comparisons and contains-tests in the filter.
    pub fn terms(&self) -> usize {
        match self {
            KeyFilter::Compare { .. } | KeyFilter::Contains { .. } => 1,
            KeyFilter::Not(inner) => inner.terms(),
            KeyFilter::All(list) | KeyFilter::Any(list) => list.iter().map(Self::terms).sum(),
        }
    }
}

fn text_of<'a>(field: Field, k: &KeyFacts<'a>) -> Option<&'a str> {
    match field {
        Field::Key => Some(k.key),
        Field::Notes => Some(k.notes),
        Field::CustomerName => k.customer.as_ref().map(|c| c.name),
        Field::CustomerEmail => k.customer.as_ref().map(|c| c.email),
        Field::CustomerCompany => k.customer.as_ref().map(|c| c.company),
        _ => None,
    }
}

fn number_of(field: Field, k: &KeyFacts<'_>) -> i64 {
    match field {
        Field::Id => k.id,
        Field::Period => k.period,
        Field::MaxNoOfMachines => k.max_no_of_machines,
        _ => 0,
    }
}

fn flag_of(field: Field, k: &KeyFacts<'_>) -> bool {
    match field {
        Field::Block => k.block,
        Field::TrialActivation => k.trial_activation,
        Field::Feature(n) => k.features.get(usize::from(n) - 1).copied().unwrap_or(false),
        _ => false,
    }
}

fn date_of(field: Field, k: &KeyFacts<'_>) -> DateTime<Utc> {
    match field {
        Field::Created => k.created,
        _ => k.expires,
    }
}

/// Why a query was refused: where, and what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchError {
    /// 1-based character position.
    pub at: usize,
    pub message: String,
}

impl std::fmt::Display for SearchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at character {}: {}", self.at, self.message)
    }
}

impl From<SearchError> for DomainError {
    fn from(e: SearchError) -> Self {
        DomainError::new("SearchQuery", e.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Number(i64),
    Text(String),
    /// `==` `!=` `<` `<=` `>` `>=` `&&` `||` `!` `(` `)` `,` `.`
    Sym(&'static str),
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("'{w}'"),
            Tok::Number(n) => format!("the number {n}"),
            Tok::Text(_) => "a text".into(),
            Tok::Sym(s) => format!("'{s}'"),
            Tok::End => "the end of the query".into(),
        }
    }
}

fn err<T>(at: usize, message: impl Into<String>) -> Result<T, SearchError> {
    Err(SearchError {
        at,
        message: message.into(),
    })
}

/// Splits a query into tokens, each with its 1-based starting character.
fn lex(input: &str) -> Result<Vec<(Tok, usize)>, SearchError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        let two = |a: char, b: char| c == a && next == Some(b);
        let sym = if two('=', '=') {
            Some(("==", 2))
        } else if two('!', '=') || two('<', '>') {
            Some(("!=", 2))
        } else if two('<', '=') {
            Some(("<=", 2))
        } else if two('>', '=') {
            Some((">=", 2))
        } else if two('&', '&') {
            Some(("&&", 2))
        } else if two('|', '|') {
            Some(("||", 2))
        } else {
            match c {
                '=' => Some(("==", 1)),
                '<' => Some(("<", 1)),
                '>' => Some((">", 1)),
                '!' => Some(("!", 1)),
                '(' => Some(("(", 1)),
                ')' => Some((")", 1)),
                ',' => Some((",", 1)),
                '.' => Some((".", 1)),
                _ => None,
            }
        };
        if let Some((s, len)) = sym {
            out.push((Tok::Sym(s), at));
            i += len;
            continue;
        }
        if c == '"' || c == '\'' {
            let quote = c;
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return err(at, "this text has no closing quote"),
                    Some('\\') => match chars.get(i + 1) {
                        Some(e @ ('"' | '\'' | '\\')) => {
                            text.push(*e);
                            i += 2;
                        }
                        _ => {
                            return err(
                                i + 1,
                                "a backslash in a text may only escape a quote or a backslash",
                            )
                        }
                    },
                    Some(q) if *q == quote => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        text.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push((Tok::Text(text), at));
            continue;
        }
        let negative = c == '-' && next.is_some_and(|n| n.is_ascii_digit());
        if c.is_ascii_digit() || negative {
            let start = i;
            i += 1;
            while chars.get(i).is_some_and(|d| d.is_ascii_digit()) {
                i += 1;
            }
            let digits: String = chars[start..i].iter().collect();
            let n = digits
                .parse::<i64>()
                .or_else(|_| err(at, format!("{digits} is too large a number")))?;
            out.push((Tok::Number(n), at));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|w| w.is_ascii_alphanumeric() || *w == '_')
            {
                i += 1;
            }
            out.push((Tok::Word(chars[start..i].iter().collect()), at));
            continue;
        }
        return err(at, format!("unexpected character {c:?}"));
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

/// A date a query names: a whole day, or an instant.
#[derive(Debug, Clone, Copy)]
enum DateValue {
    Day(NaiveDate),
    Instant(DateTime<Utc>),
}

struct Parser {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
    today: NaiveDate,
    terms: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].0
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        &self.tokens[(self.pos + ahead).min(self.tokens.len() - 1)].0
    }

    fn at(&self) -> usize {
        self.tokens[self.pos.min(self.tokens.len() - 1)].1
    }

    fn next(&mut self) -> (Tok, usize) {
        let t = self.tokens[self.pos.min(self.tokens.len() - 1)].clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Word(w) if w.eq_ignore_ascii_case(word))
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Tok::Sym(s) if *s == sym) {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect_sym(&mut self, sym: &'static str, what: &str) -> Result<(), SearchError> {
        if self.eat_sym(sym) {
            return Ok(());
        }
        err(
            self.at(),
            format!("expected '{sym}' {what}, found {}", self.peek().describe()),
        )
    }

    fn term(&mut self, at: usize) -> Result<(), SearchError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return err(
                at,
                format!("a query may make at most {MAX_TERMS} comparisons"),
            );
        }
        Ok(())
    }

    fn or(&mut self, depth: usize) -> Result<KeyFilter, SearchError> {
        let mut any = vec![self.and(depth)?];
        while self.eat_sym("||") || self.eat_word("or") {
            any.push(self.and(depth)?);
        }
        Ok(if any.len() == 1 {
            any.remove(0)
        } else {
            KeyFilter::Any(any)
        })
    }

    fn and(&mut self, depth: usize) -> Result<KeyFilter, SearchError> {
        let mut all = vec![self.unary(depth)?];
        while self.eat_sym("&&") || self.eat_word("and") {
            all.push(self.unary(depth)?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            KeyFilter::All(all)
        })
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if self.is_word(word) {
            self.next();
            true
        } else {
            false
        }
    }

    fn deeper(&self, depth: usize) -> Result<usize, SearchError> {
        if depth >= MAX_DEPTH {
            return err(
                self.at(),
                format!("parentheses and negations may nest at most {MAX_DEPTH} deep"),
            );
        }
        Ok(depth + 1)
    }

    fn unary(&mut self, depth: usize) -> Result<KeyFilter, SearchError> {
        if self.eat_sym("!") || self.eat_word("not") {
            let depth = self.deeper(depth)?;
            return Ok(KeyFilter::Not(Box::new(self.unary(depth)?)));
        }
        if self.eat_sym("(") {
            let depth = self.deeper(depth)?;
            let inner = self.or(depth)?;
            self.expect_sym(")", "to close the parenthesis")?;
            return Ok(inner);
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<KeyFilter, SearchError> {
        let (first, at) = self.next();
        let Tok::Word(first) = first else {
            return err(
                at,
                format!(
                    "expected a field such as Key or F1, found {}",
                    first.describe()
                ),
            );
        };
        let mut path = vec![first];
        while *self.peek() == Tok::Sym(".") {
            let Tok::Word(part) = self.peek_at(1).clone() else {
                self.next();
                return err(self.at(), "expected a name after '.'");
            };
            if part.eq_ignore_ascii_case("contains") {
                self.next();
                self.next();
                return self.contains(&path, at);
            }
            self.next();
            self.next();
            path.push(part);
        }
        let field = self.field(&path, at)?;
        let op = match self.peek().clone() {
            Tok::Sym("==") => Comparison::Eq,
            Tok::Sym("!=") => Comparison::Ne,
            Tok::Sym("<") => Comparison::Lt,
            Tok::Sym("<=") => Comparison::Le,
            Tok::Sym(">") => Comparison::Gt,
            Tok::Sym(">=") => Comparison::Ge,
            _ if field.kind() == FieldKind::Flag => {
                self.term(at)?;
                return Ok(KeyFilter::Compare {
                    field,
                    op: Comparison::Eq,
                    value: Operand::Flag(true),
                });
            }
            other => {
                return err(
                    self.at(),
                    format!(
                        "expected a comparison such as == after {}, found {}",
                        field.name(),
                        other.describe()
                    ),
                )
            }
        };
        let op_at = self.at();
        self.next();
        self.term(at)?;
        match field.kind() {
            FieldKind::Text | FieldKind::Flag if !matches!(op, Comparison::Eq | Comparison::Ne) => {
                err(
                    op_at,
                    format!("{} can only be compared with == or !=", field.name()),
                )
            }
            FieldKind::Number => {
                let value = self.number(&field)?;
                Ok(KeyFilter::Compare {
                    field,
                    op,
                    value: Operand::Number(value),
                })
            }
            FieldKind::Text => {
                let text = self.text(&field)?;
                Ok(KeyFilter::Compare {
                    field,
                    op,
                    value: Operand::Text(normalise(field, text)),
                })
            }
            FieldKind::Flag => {
                let value = self.flag(&field)?;
                Ok(KeyFilter::Compare {
                    field,
                    op,
                    value: Operand::Flag(value),
                })
            }
            FieldKind::Date => {
                let value = self.date(&field)?;
                self.term(at)?;
                Ok(date_filter(field, op, value))
            }
        }
    }

    fn field(&self, path: &[String], at: usize) -> Result<Field, SearchError> {
        if let Some(field) = Field::named(path) {
            return Ok(field);
        }
        let name = path.join(".");
        if UNSUPPORTED.contains(&path[0].to_ascii_lowercase().as_str()) {
            return err(at, format!("searching by {name} is not supported"));
        }
        err(
            at,
            format!("unknown field {name:?}; the fields are {KNOWN_FIELDS}"),
        )
    }

    fn contains(&mut self, path: &[String], at: usize) -> Result<KeyFilter, SearchError> {
        let field = self.field(path, at)?;
        if field.kind() != FieldKind::Text {
            return err(
                at,
                format!(
                    "{} is not a text: Contains applies to texts only",
                    field.name()
                ),
            );
        }
        self.expect_sym("(", "after Contains")?;
        let text = self.text(&field)?;
        self.expect_sym(")", "to close Contains(…)")?;
        self.term(at)?;
        Ok(KeyFilter::Contains {
            field,
            text: normalise(field, text),
        })
    }

    fn number(&mut self, field: &Field) -> Result<i64, SearchError> {
        match self.next() {
            (Tok::Number(n), _) => Ok(n),
            (other, at) => err(
                at,
                format!("{} is a number, not {}", field.name(), other.describe()),
            ),
        }
    }

    fn text(&mut self, field: &Field) -> Result<String, SearchError> {
        match self.next() {
            (Tok::Text(t), _) => Ok(t),
            (other, at) => err(
                at,
                format!(
                    "{} is compared with a text in quotes, not {}",
                    field.name(),
                    other.describe()
                ),
            ),
        }
    }

    fn flag(&mut self, field: &Field) -> Result<bool, SearchError> {
        match self.next() {
            (Tok::Word(w), _)
                if w.eq_ignore_ascii_case("true") || w.eq_ignore_ascii_case("yes") =>
            {
                Ok(true)
            }
            (Tok::Word(w), _)
                if w.eq_ignore_ascii_case("false") || w.eq_ignore_ascii_case("no") =>
            {
                Ok(false)
            }
            (Tok::Number(1), _) => Ok(true),
            (Tok::Number(0), _) => Ok(false),
            (other, at) => err(
                at,
                format!(
                    "{} is true or false, not {}",
                    field.name(),
                    other.describe()
                ),
            ),
        }
    }

    fn date(&mut self, field: &Field) -> Result<DateValue, SearchError> {
        let (tok, at) = self.next();
        let Tok::Word(word) = &tok else {
            return err(
                at,
                format!(
                    "{} is a date such as DateTime(2015,01,01) or today, not {}",
                    field.name(),
                    tok.describe()
                ),
            );
        };
        let day = |d: Option<NaiveDate>| match d {
            Some(d) => Ok(DateValue::Day(d)),
            None => err(
                at,
                format!("{word} is outside the dates a license can have"),
            ),
        };
        match word.to_ascii_lowercase().as_str() {
            "today" => day(Some(self.today)),
            "yesterday" => day(self.today.checked_sub_days(Days::new(1))),
            "tomorrow" => day(self.today.checked_add_days(Days::new(1))),
            "monthback" => day(self.today.checked_sub_months(Months::new(1))),
            "monthforward" => day(self.today.checked_add_months(Months::new(1))),
            "datetime" => self.date_time(at),
            _ => err(
                at,
                format!(
                    "{} is a date such as DateTime(2015,01,01) or today, not '{word}'",
                    field.name()
                ),
            ),
        }
    }

    /// `DateTime(year, month, day)` or `DateTime(year, month, day, hour, minute, second)`.
    fn date_time(&mut self, at: usize) -> Result<DateValue, SearchError> {
        self.expect_sym("(", "after DateTime")?;
        let mut parts = Vec::with_capacity(6);
        loop {
            match self.next() {
                (Tok::Number(n), _) if parts.len() < 6 => parts.push(n),
                (other, at) => {
                    return err(
                        at,
                        format!(
                            "DateTime takes three or six whole numbers, not {}",
                            other.describe()
                        ),
                    )
                }
            }
            if self.eat_sym(")") {
                break;
            }
            self.expect_sym(",", "between the numbers of DateTime")?;
        }
        let small = |n: i64| u32::try_from(n).ok();
        let day = |y: i64, m: i64, d: i64| {
            let year = i32::try_from(y).ok().filter(|y| (1..=9999).contains(y))?;
            NaiveDate::from_ymd_opt(year, small(m)?, small(d)?)
        };
        match parts.as_slice() {
            [y, m, d] => match day(*y, *m, *d) {
                Some(d) => Ok(DateValue::Day(d)),
                None => err(at, "DateTime names no day of the years 1 to 9999"),
            },
            [y, m, d, h, mi, s] => {
                let time = small(*h)
                    .zip(small(*mi))
                    .zip(small(*s))
                    .and_then(|((h, mi), s)| NaiveTime::from_hms_opt(h, mi, s));
                match day(*y, *m, *d).zip(time) {
                    Some((d, t)) => Ok(DateValue::Instant(d.and_time(t).and_utc())),
                    None => err(at, "DateTime names no time of the years 1 to 9999"),
                }
            }
            _ => err(
                at,
                "DateTime takes three numbers (a day) or six (an instant)",
            ),
        }
    }
}

/// Keys are stored in upper case and compared so; other texts exactly as written.
fn normalise(field: Field, text: String) -> String {
    match field {
        Field::Key => text.to_ascii_uppercase(),
        _ => text,
    }
}

/// A comparison with a date: with an instant as it is, with a day as described at the top.
fn date_filter(field: Field, op: Comparison, value: DateValue) -> KeyFilter {
    let cmp = |op, at| KeyFilter::Compare {
        field,
        op,
        value: Operand::Date(at),
    };
    match value {
        DateValue::Instant(at) => cmp(op, at),
        DateValue::Day(day) => {
            let start = day.and_time(NaiveTime::MIN).and_utc();
            // The day after 9999-12-31 still exists for chrono; nothing is beyond it here.
            let end = day
                .checked_add_days(Days::new(1))
                .map_or(DateTime::<Utc>::MAX_UTC, |d| {
                    d.and_time(NaiveTime::MIN).and_utc()
                });
            match op {
                Comparison::Eq => {
                    KeyFilter::All(vec![cmp(Comparison::Ge, start), cmp(Comparison::Lt, end)])
                }
                Comparison::Ne => {
                    KeyFilter::Any(vec![cmp(Comparison::Lt, start), cmp(Comparison::Ge, end)])
                }
                Comparison::Lt => cmp(Comparison::Lt, start),
                Comparison::Le => cmp(Comparison::Lt, end),
                Comparison::Gt => cmp(Comparison::Ge, end),
                Comparison::Ge => cmp(Comparison::Ge, start),
            }
        }
    }
}

/// Parses a `SearchQuery`; `None` for an empty one (every key). `today` is the current date
/// (UTC), for `today`, `yesterday` and the like.
pub fn parse(input: &str, today: NaiveDate) -> Result<Option<KeyFilter>, SearchError> {
    // Bytes first: a huge body is refused before it is even counted.
    if input.len() > MAX_QUERY_CHARS * 4 || input.chars().count() > MAX_QUERY_CHARS {
        return err(
            MAX_QUERY_CHARS + 1,
            format!("a query may be at most {MAX_QUERY_CHARS} characters"),
        );
    }
    let tokens = lex(input)?;
    if tokens.len() == 1 {
        return Ok(None);
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        today,
        terms: 0,
    };
    let filter = parser.or(0)?;
    match parser.peek() {
        Tok::End => Ok(Some(filter)),
        other => err(
            parser.at(),
            format!(
                "expected && or || between conditions, found {}",
                other.describe()
            ),
        ),
    }
}

/// How `GetKeys` orders keys (`OrderBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyOrder {
    pub by: OrderField,
    pub descending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderField {
    #[default]
    Id,
    Created,
    Expires,
    /// The customer's id; keys without a customer first.
    Customer,
    Feature(u8),
    Block,
    /// When the license last changed.
    Modified,
}

impl KeyOrder {
    /// `ID ascending` (the default), `Expires descending`, `F3`, `Created desc`, or the
    /// dashboard's `Created (descending)`: a field and an optional direction, in any case.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let bad = || {
            DomainError::new(
                "OrderBy",
                format!(
                    "{input:?} is not an order: give ID, Created, Expires, Customer, F1..F8, \
                     Block or Modified, then ascending or descending"
                ),
            )
        };
        let cleaned = input.replace(['(', ')'], " ");
        let words: Vec<&str> = cleaned.split_whitespace().collect();
        let (field, direction) = match words.as_slice() {
            [] => return Ok(Self::default()),
            [field] => (*field, None),
            [field, direction] => (*field, Some(*direction)),
            _ => return Err(bad()),
        };
        let by = match field.to_ascii_lowercase().as_str() {
            "id" => OrderField::Id,
            "created" => OrderField::Created,
            "expires" => OrderField::Expires,
            "customer" => OrderField::Customer,
            "block" => OrderField::Block,
            "modified" => OrderField::Modified,
            f => match Field::named(&[f.to_owned()]) {
                Some(Field::Feature(n)) => OrderField::Feature(n),
                _ => return Err(bad()),
            },
        };
        let descending = match direction.map(str::to_ascii_lowercase).as_deref() {
            None | Some("ascending" | "asc") => false,
            Some("descending" | "desc") => true,
            Some(_) => return Err(bad()),
        };
        Ok(Self { by, descending })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, 15).unwrap()
    }

    fn q(input: &str) -> KeyFilter {
        parse(input, today())
            .unwrap_or_else(|e| panic!("{input}: {e}"))
            .unwrap()
    }

    fn refused(input: &str) -> SearchError {
        parse(input, today()).expect_err(input)
    }

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_time(NaiveTime::MIN)
            .and_utc()
    }

    fn cmp(field: Field, op: Comparison, value: Operand) -> KeyFilter {
        KeyFilter::Compare { field, op, value }
    }

    #[test]
    fn the_documented_examples_parse() {
        assert_eq!(
            q("id=2"),
            cmp(Field::Id, Comparison::Eq, Operand::Number(2))
        );
        assert_eq!(
            q("id=2 or id=3"),
            KeyFilter::Any(vec![
                cmp(Field::Id, Comparison::Eq, Operand::Number(2)),
                cmp(Field::Id, Comparison::Eq, Operand::Number(3)),
            ])
        );
        assert_eq!(
            q("id <= 10"),
            cmp(Field::Id, Comparison::Le, Operand::Number(10))
        );
        assert_eq!(
            q(r#"key="itvbc-GXXNU-GSMTK-NIJBT""#),
            cmp(
                Field::Key,
                Comparison::Eq,
                Operand::Text("ITVBC-GXXNU-GSMTK-NIJBT".into())
            )
        );
        assert_eq!(
            q(r#"key.contains("ITVBC")"#),
            KeyFilter::Contains {
                field: Field::Key,
                text: "ITVBC".into()
            }
        );
        assert_eq!(
            q(r#"notes.Contains("to Bob")"#),
            KeyFilter::Contains {
                field: Field::Notes,
                text: "to Bob".into()
            }
        );
        assert_eq!(
            q("F1 = true"),
            cmp(Field::Feature(1), Comparison::Eq, Operand::Flag(true))
        );
        assert_eq!(
            q("block=true"),
            cmp(Field::Block, Comparison::Eq, Operand::Flag(true))
        );
        assert_eq!(
            q("period = 30"),
            cmp(Field::Period, Comparison::Eq, Operand::Number(30))
        );
        assert_eq!(
            q(r#"customer.name="Bob""#),
            cmp(
                Field::CustomerName,
                Comparison::Eq,
                Operand::Text("Bob".into())
            )
        );
        assert_eq!(
            q("customer.id=3"),
            cmp(Field::CustomerId, Comparison::Eq, Operand::Number(3))
        );
        assert_eq!(
            q("trialactivation = true"),
            cmp(Field::TrialActivation, Comparison::Eq, Operand::Flag(true))
        );
        assert_eq!(
            q("created >= DateTime(2015,01,01)"),
            cmp(
                Field::Created,
                Comparison::Ge,
                Operand::Date(at(2015, 1, 1))
            )
        );
        assert_eq!(
            q("expires <= DateTime(2016,01,01)"),
            cmp(
                Field::Expires,
                Comparison::Lt,
                Operand::Date(at(2016, 1, 2))
            )
        );
        assert_eq!(
            q("created = today"),
            KeyFilter::All(vec![
                cmp(
                    Field::Created,
                    Comparison::Ge,
                    Operand::Date(at(2024, 3, 15))
                ),
                cmp(
                    Field::Created,
                    Comparison::Lt,
                    Operand::Date(at(2024, 3, 16))
                ),
            ])
        );
        assert_eq!(
            q("created >= yesterday"),
            cmp(
                Field::Created,
                Comparison::Ge,
                Operand::Date(at(2024, 3, 14))
            )
        );
        assert_eq!(
            q("expires < monthforward && expires > tomorrow"),
            KeyFilter::All(vec![
                cmp(
                    Field::Expires,
                    Comparison::Lt,
                    Operand::Date(at(2024, 4, 15))
                ),
                cmp(
                    Field::Expires,
                    Comparison::Ge,
                    Operand::Date(at(2024, 3, 17))
                ),
            ])
        );
        assert_eq!(
            q("Created > MonthBack"),
            cmp(
                Field::Created,
                Comparison::Ge,
                Operand::Date(at(2024, 2, 16))
            )
        );
        assert_eq!(
            q("expires != DateTime(2030,1,2,3,4,5)"),
            cmp(
                Field::Expires,
                Comparison::Ne,
                Operand::Date(at(2030, 1, 2) + chrono::Duration::seconds(3 * 3600 + 4 * 60 + 5))
            )
        );
    }

    #[test]
    fn precedence_negation_and_bare_flags() {
        // && binds tighter than ||.
        assert_eq!(
            q("F1 || F2 && !Block"),
            KeyFilter::Any(vec![
                cmp(Field::Feature(1), Comparison::Eq, Operand::Flag(true)),
                KeyFilter::All(vec![
                    cmp(Field::Feature(2), Comparison::Eq, Operand::Flag(true)),
                    KeyFilter::Not(Box::new(cmp(
                        Field::Block,
                        Comparison::Eq,
                        Operand::Flag(true)
                    ))),
                ]),
            ])
        );
        assert_eq!(
            q("(F1 or F2) and not (ID > 5)"),
            KeyFilter::All(vec![
                KeyFilter::Any(vec![
                    cmp(Field::Feature(1), Comparison::Eq, Operand::Flag(true)),
                    cmp(Field::Feature(2), Comparison::Eq, Operand::Flag(true)),
                ]),
                KeyFilter::Not(Box::new(cmp(Field::Id, Comparison::Gt, Operand::Number(5)))),
            ])
        );
        assert_eq!(
            q("block == False && maxnoofmachines <> -1"),
            KeyFilter::All(vec![
                cmp(Field::Block, Comparison::Eq, Operand::Flag(false)),
                cmp(Field::MaxNoOfMachines, Comparison::Ne, Operand::Number(-1)),
            ])
        );
        assert_eq!(
            q(r#"Customer.Email == "a\"b\\c" || Customer.CompanyName.Contains('Ltd')"#),
            KeyFilter::Any(vec![
                cmp(
                    Field::CustomerEmail,
                    Comparison::Eq,
                    Operand::Text("a\"b\\c".into())
                ),
                KeyFilter::Contains {
                    field: Field::CustomerCompany,
                    text: "Ltd".into()
                },
            ])
        );
        assert_eq!(parse("   ", today()), Ok(None));
    }

    #[test]
    fn errors_say_where_and_what() {
        let e = refused("notes < \"x\"");
        assert_eq!(e.at, 7);
        assert!(
            e.message
                .contains("Notes can only be compared with == or !="),
            "{e}"
        );
        let e = refused("frobnicate = 1");
        assert_eq!(e.at, 1);
        assert!(e.message.contains("unknown field \"frobnicate\""), "{e}");
        assert!(refused("ActivatedMachines.Count() > 0")
            .message
            .contains("not supported"));
        assert!(refused("key = ").message.contains("the end of the query"));
        assert!(refused("key = \"open").message.contains("no closing quote"));
        assert!(refused("id = 1 id = 2")
            .message
            .contains("expected && or ||"));
        assert!(refused("(id = 1").message.contains("')'"));
        assert!(refused("id = \"1\"").message.contains("ID is a number"));
        assert!(refused("F9").message.contains("unknown field"));
        assert!(refused("block = maybe").message.contains("true or false"));
        assert!(refused("F1.Contains(\"x\")").message.contains("not a text"));
        assert!(refused("created = DateTime(2015,2,30)")
            .message
            .contains("no day"));
        assert!(refused("created = DateTime(2015,2)")
            .message
            .contains("three numbers"));
        assert!(refused("created = DateTime(1,1,1,1,1,1,1)")
            .message
            .contains("three or six"));
        assert!(refused("created = DateTime(2015,1,1,24,0,0)")
            .message
            .contains("no time"));
        assert!(refused("created = soon").message.contains("'soon'"));
        assert!(refused("id = 99999999999999999999")
            .message
            .contains("too large"));
        assert!(refused("id = 1 # 2")
            .message
            .contains("unexpected character '#'"));
        assert!(refused("id = 1 &")
            .message
            .contains("unexpected character '&'"));
        assert!(refused("id").message.contains("expected a comparison"));
        let deep = format!("{}F1{}", "(".repeat(40), ")".repeat(40));
        assert!(refused(&deep).message.contains("nest at most"));
        let negated = format!("{}F1", "!".repeat(40));
        assert!(refused(&negated).message.contains("nest at most"));
        let many = vec!["F1"; MAX_TERMS + 1].join("||");
        assert!(refused(&many).message.contains("at most 200 comparisons"));
        let long = format!("notes = \"{}\"", "x".repeat(MAX_QUERY_CHARS));
        assert!(refused(&long).message.contains("at most 2000 characters"));
        // The refusal names the query parameter for the API to report.
        let domain: DomainError = refused("x").into();
        assert_eq!(domain.field, "SearchQuery");
    }

    #[test]
    fn filters_evaluate_like_the_store_does() {
        let created = at(2024, 3, 15) + chrono::Duration::hours(9);
        let customer = CustomerFacts {
            id: 7,
            name: "Bob",
            email: "",
            company: "Bob Ltd",
            created: at(2020, 1, 1),
        };
        let k = KeyFacts {
            id: 12,
            key: "AAAAA-BBBBB",
            notes: "sold to Bob",
            block: false,
            features: [true, false, false, false, false, false, false, true],
            expires: at(2025, 1, 1),
            created,
            period: 30,
            max_no_of_machines: 2,
            trial_activation: false,
            customer: Some(customer),
        };
        for (query, expected) in [
            ("created = today", true),
            ("created = yesterday", false),
            ("created < today", false),
            ("created <= today", true),
            ("created > today", false),
            ("F1 && F8 && !F2", true),
            ("key.contains(\"bbbbb\")", true),
            ("notes.contains(\"bob\")", false),
            ("customer.email == \"\"", true),
            (
                "customer.companyname.contains(\"Ltd\") && customer.id == 7",
                true,
            ),
            ("customer.created < DateTime(2021,1,1)", true),
            ("expires > DateTime(2024,12,31) and period = 30", true),
            ("id > 12 || maxnoofmachines >= 3", false),
        ] {
            assert_eq!(q(query).matches(&k), expected, "{query}");
        }
        let no_customer = KeyFacts {
            customer: None,
            ..k.clone()
        };
        assert!(!q("customer.name == \"Bob\"").matches(&no_customer));
        assert!(q("customer.name != \"Bob\"").matches(&no_customer));
        assert!(q("customer.id == 0").matches(&no_customer));
        assert!(!q("customer.created < DateTime(2021,1,1)").matches(&no_customer));
    }

    #[test]
    fn orders() {
        assert_eq!(KeyOrder::parse("").unwrap(), KeyOrder::default());
        assert_eq!(
            KeyOrder::parse("ID ascending").unwrap(),
            KeyOrder::default()
        );
        assert_eq!(
            KeyOrder::parse("Expires descending").unwrap(),
            KeyOrder {
                by: OrderField::Expires,
                descending: true
            }
        );
        assert_eq!(
            KeyOrder::parse("created (Descending)").unwrap(),
            KeyOrder {
                by: OrderField::Created,
                descending: true
            }
        );
        assert_eq!(
            KeyOrder::parse("f3 asc").unwrap(),
            KeyOrder {
                by: OrderField::Feature(3),
                descending: false
            }
        );
        for bad in ["Key", "ID sideways", "ID ascending now", "F9"] {
            let e = KeyOrder::parse(bad).unwrap_err();
            assert_eq!(e.field, "OrderBy", "{bad}");
        }
    }

    /// Any input at all: an answer, never a panic, and an accepted query stays within bounds.
    #[test]
    fn no_input_makes_the_parser_panic() {
        const PIECES: [&str; 40] = [
            "id",
            "Key",
            "notes",
            "block",
            "F1",
            "F8",
            "F0",
            "expires",
            "created",
            "customer",
            ".",
            "name",
            "email",
            "Contains",
            "(",
            ")",
            "\"x\"",
            "'y",
            "\\",
            "==",
            "=",
            "!=",
            "<>",
            "<",
            ">=",
            "&&",
            "||",
            "!",
            "and",
            "or",
            "not",
            "true",
            "DateTime",
            ",",
            "2015",
            "-1",
            "today",
            "monthback",
            "99999999999999999999",
            "é",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5ea7c4);
        for _ in 0..20_000 {
            let mut input = String::new();
            for _ in 0..rng.gen_range(0..24) {
                if rng.gen_bool(0.85) {
                    input.push_str(PIECES[rng.gen_range(0..PIECES.len())]);
                } else {
                    input.push(char::from_u32(rng.gen_range(0..0x3000)).unwrap_or('?'));
                }
                if rng.gen_bool(0.5) {
                    input.push(' ');
                }
            }
            if let Ok(Some(filter)) = parse(&input, today()) {
                assert!(filter.terms() <= MAX_TERMS, "{input}");
            }
        }
        // Deep and long inputs of every shape are refused, not overflowed.
        for n in [MAX_DEPTH, 1_000, 100_000] {
            let _ = parse(&"(".repeat(n), today());
            let _ = parse(&"!".repeat(n), today());
            let _ = parse(&"F1&&".repeat(n), today());
        }
    }
}
