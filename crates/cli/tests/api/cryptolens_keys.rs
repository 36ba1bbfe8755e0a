//! `product/GetKeys` on the wire: `SearchQuery`, `OrderBy`, paging and totals, on both
//! databases, against known licenses and against the reference evaluation of the same query
//! (`KeyFilter::matches`) for many generated queries.

use chrono::{DateTime, NaiveDateTime, Utc};
use keyturn_core::key_search::{self, CustomerFacts, KeyFacts};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::cryptolens::{get, post, token, Reply};
use crate::helpers::TestApp;

async fn keys(app: &TestApp, tok: &str, pid: i64, extra: &[(&str, &str)]) -> Reply {
    let pid = pid.to_string();
    let mut params = vec![("token", tok), ("ProductId", pid.as_str())];
    params.extend_from_slice(extra);
    post(app, "/api//product/getkeys/", &params).await
}

fn ids(r: &Reply) -> Vec<i64> {
    assert_eq!(r.body["result"], 0, "{}", r.body["message"]);
    r.body["licenseKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_i64().unwrap())
        .collect()
}

/// The keys a query finds (at most a page).
async fn found(app: &TestApp, tok: &str, pid: i64, query: &str) -> Vec<i64> {
    let r = keys(app, tok, pid, &[("SearchQuery", query)]).await;
    let found = ids(&r);
    assert_eq!(
        r.body["total"],
        found.len(),
        "{query}: {}",
        r.body["message"]
    );
    found
}

/// How many keys a query finds.
async fn total(app: &TestApp, tok: &str, pid: i64, query: &str) -> i64 {
    let r = keys(app, tok, pid, &[("SearchQuery", query)]).await;
    assert_eq!(r.body["result"], 0, "{query}: {}", r.body["message"]);
    r.body["total"].as_i64().unwrap()
}

async fn customer(app: &TestApp, name: &str, email: &str, company: &str) -> i64 {
    let mut body = json!({"name": name, "email": email});
    if !company.is_empty() {
        body["company"] = json!(company);
    }
    let r = app.post("/v1/customers", body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_i64().unwrap()
}

fn id_of(license: &Value) -> i64 {
    license["id"].as_i64().unwrap()
}

async fn search_order_and_pages(app: &TestApp) {
    let pid = app.product("Editor", &["pro", "team", "export"]).await;
    let other = app.product("Other", &["pro"]).await;
    let ann = customer(app, "Ann Lee", "ann@example.com", "Ann Ltd").await;
    let bob = customer(app, "Bob", "bob@example.com", "").await;
    let l1 = app
        .license(
            json!({"product_id": pid, "features": ["pro"], "notes": "sold to Bob",
                        "customer_id": bob, "expires": "2030-01-01", "max_machines": 2}),
        )
        .await;
    let l2 = app
        .license(
            json!({"product_id": pid, "features": ["pro", "team"], "notes": "reseller order",
                        "customer_id": ann, "period_days": 30, "blocked": true}),
        )
        .await;
    let l3 = app.license(json!({"product_id": pid})).await;
    let bulk = app
        .post(
            "/v1/licenses",
            json!({"product_id": pid, "features": ["export"], "notes": "bulk", "period_days": 365, "quantity": 100}),
        )
        .await;
    assert_eq!(bulk.status, 201, "{}", bulk.body);
    let bulk: Vec<i64> = bulk.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    app.license(json!({"product_id": other, "features": ["pro"], "notes": "sold to Bob"}))
        .await;
    let (l1, l2, l3) = (id_of(&l1), id_of(&l2), id_of(&l3));
    let tok = token(
        app,
        json!({"name": "keys", "permissions": ["cryptolens:getkeys"], "product_id": pid}),
    )
    .await;

    // Without a query: every key of the product, 99 to a page, in id order.
    let r = keys(app, &tok, pid, &[("SearchQuery", "")]).await;
    assert_eq!(r.body["total"], 103, "{}", r.body);
    assert_eq!(r.body["returned"], 99);
    assert_eq!(r.body["pageCount"], 2);
    let page1 = ids(&r);
    let r = keys(app, &tok, pid, &[("Page", "2")]).await;
    assert_eq!(r.body["returned"], 4);
    let all: Vec<i64> = page1.into_iter().chain(ids(&r)).collect();
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(all, sorted, "ascending ids, none twice");
    assert_eq!(all.len(), 103);

    for (query, expected) in [
        ("F1", vec![l1, l2]),
        ("f2 && block", vec![l2]),
        ("!F1 and not F3", vec![l3]),
        ("F1 = true and Block == false", vec![l1]),
        (r#"Notes.Contains("Bob")"#, vec![l1]),
        (r#"notes == "reseller order""#, vec![l2]),
        (r#"Customer.Email == "ann@example.com""#, vec![l2]),
        (
            r#"customer.companyname.contains("Ltd") || customer.id == 0 && F1"#,
            vec![l2],
        ),
        ("Expires > DateTime(2100,1,1)", vec![l3]),
        ("expires = DateTime(2030,01,01)", vec![l1]),
        ("MaxNoOfMachines >= 2", vec![l1]),
        (&format!("ID == {l3}"), vec![l3]),
        ("created < yesterday", vec![]),
        ("period = 30 or (Period == 0 && !Block)", vec![l1, l2, l3]),
        // A quote in a value is a value, never SQL.
        (r#"Notes == "x' OR 1=1 --""#, vec![]),
        (r#"Key.Contains("'); DROP TABLE licenses; --")"#, vec![]),
    ] {
        assert_eq!(found(app, &tok, pid, query).await, expected, "{query}");
    }
    assert_eq!(
        total(app, &tok, pid, r#"customer.name != "Bob""#).await,
        102
    );
    assert_eq!(total(app, &tok, pid, "created >= yesterday").await, 103);
    // Keys in any case.
    let key = app.get(&format!("/v1/licenses/{l1}")).await.body["key"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase();
    assert_eq!(
        found(app, &tok, pid, &format!("Key == \"{key}\"")).await,
        vec![l1]
    );

    // Paging applies to the matches.
    let query = [("SearchQuery", r#"Notes == "bulk""#)];
    let r = keys(app, &tok, pid, &query).await;
    assert_eq!(
        (r.body["total"].clone(), r.body["pageCount"].clone()),
        (json!(100), json!(2))
    );
    let mut paged = ids(&r);
    let r = keys(app, &tok, pid, &[query[0], ("Page", "2")]).await;
    assert_eq!(r.body["returned"], 1);
    paged.extend(ids(&r));
    assert_eq!(paged, bulk);

    // Orders.
    let few = ("SearchQuery", r#"Notes != "bulk""#);
    let order = |by: &'static str| [few, ("OrderBy", by)];
    for (by, expected) in [
        ("ID ascending", vec![l1, l2, l3]),
        ("ID descending", vec![l3, l2, l1]),
        ("Expires ascending", vec![l2, l1, l3]),
        ("Expires (descending)", vec![l3, l1, l2]),
        // Ties keep the id order of the same direction.
        ("F2 descending", vec![l2, l3, l1]),
        ("Block desc", vec![l2, l3, l1]),
        // Keys without a customer first, then by customer (Ann was created first).
        ("Customer", vec![l3, l2, l1]),
    ] {
        let r = keys(app, &tok, pid, &order(by)).await;
        assert_eq!(ids(&r), expected, "{by}");
    }
    let r = keys(app, &tok, pid, &[("OrderBy", "ID descending")]).await;
    assert_eq!(ids(&r)[0], *bulk.last().unwrap());

    // A GET with the query in the URL, as Cryptolens's own examples call it.
    let r = get(
        app,
        &format!("/api/product/GetKeys?token={tok}&ProductId={pid}&SearchQuery=F2%20%7C%7C%20F1&OrderBy=ID%20descending"),
    )
    .await;
    assert_eq!(ids(&r), vec![l2, l1]);

    // Queries to fix say what is wrong, and where.
    let r = keys(app, &tok, pid, &[("SearchQuery", r#"Notes < "b""#)]).await;
    assert_eq!(r.body["result"], 1, "{}", r.body);
    let message = r.body["message"].as_str().unwrap();
    assert!(
        message.starts_with("The input parameters were incorrect. SearchQuery: at character 7:")
            && message.contains("Notes can only be compared with == or !="),
        "{message}"
    );
    let r = keys(
        app,
        &tok,
        pid,
        &[("SearchQuery", "ActivatedMachines.Count() > 0")],
    )
    .await;
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("not supported"),
        "{}",
        r.body
    );
    let r = keys(app, &tok, pid, &[("OrderBy", "Notes ascending")]).await;
    assert!(
        r.body["message"].as_str().unwrap().contains("OrderBy"),
        "{}",
        r.body
    );
    let r = keys(app, &tok, other, &[]).await;
    assert_eq!(r.body["message"], "Access denied.", "{}", r.body);

    // Where the product answers expired keys as blocked, Block finds them as listings show them.
    let strict = app
        .post(
            "/v1/products",
            json!({"name": "Strict", "features": ["pro"], "block_expired_licenses": true}),
        )
        .await;
    assert_eq!(strict.status, 201, "{}", strict.body);
    let strict = id_of(&strict.body);
    let lapsed = id_of(
        &app.license(json!({"product_id": strict, "expires": "2001-05-05"}))
            .await,
    );
    let running = id_of(
        &app.license(json!({"product_id": strict, "period_days": 30}))
            .await,
    );
    let admin = app.admin.clone();
    let r = keys(app, &admin, strict, &[("OrderBy", "Block descending")]).await;
    assert_eq!(ids(&r), vec![lapsed, running]);
    assert_eq!(r.body["licenseKeys"][0]["block"], true);
    assert_eq!(found(app, &admin, strict, "Block").await, vec![lapsed]);
    assert_eq!(found(app, &admin, strict, "!Block").await, vec![running]);
}
on_every_backend!(
    cryptolens_get_keys_search_order_and_pages,
    search_order_and_pages
);

fn time(v: &Value) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(v.as_str().unwrap(), "%Y-%m-%dT%H:%M:%S")
        .unwrap()
        .and_utc()
}

/// What a query can see of a key, read from its listing.
struct Facts {
    id: i64,
    key: String,
    notes: String,
    block: bool,
    features: [bool; 8],
    expires: DateTime<Utc>,
    created: DateTime<Utc>,
    period: i64,
    machines: i64,
    trial_activation: bool,
    customer: Option<(i64, String, String, String, DateTime<Utc>)>,
}

impl Facts {
    fn read(k: &Value) -> Self {
        let c = &k["customer"];
        Facts {
            id: k["id"].as_i64().unwrap(),
            key: k["key"].as_str().unwrap().to_owned(),
            notes: k["notes"].as_str().unwrap_or("").to_owned(),
            block: k["block"].as_bool().unwrap(),
            features: std::array::from_fn(|i| k[format!("f{}", i + 1)].as_bool().unwrap()),
            expires: time(&k["expires"]),
            created: time(&k["created"]),
            period: k["period"].as_i64().unwrap(),
            machines: k["maxNoOfMachines"].as_i64().unwrap(),
            trial_activation: k["trialActivation"].as_bool().unwrap(),
            customer: c.is_object().then(|| {
                (
                    c["id"].as_i64().unwrap(),
                    c["name"].as_str().unwrap().to_owned(),
                    c["email"].as_str().unwrap().to_owned(),
                    c["companyName"].as_str().unwrap().to_owned(),
                    time(&c["created"]),
                )
            }),
        }
    }

    fn view(&self) -> KeyFacts<'_> {
        KeyFacts {
            id: self.id,
            key: &self.key,
            notes: &self.notes,
            block: self.block,
            features: self.features,
            expires: self.expires,
            created: self.created,
            period: self.period,
            max_no_of_machines: self.machines,
            trial_activation: self.trial_activation,
            customer: self
                .customer
                .as_ref()
                .map(|(id, name, email, company, created)| CustomerFacts {
                    id: *id,
                    name,
                    email,
                    company,
                    created: *created,
                }),
        }
    }
}

/// A random query over the values the keys hold, so that conditions both hold and fail.
fn random_query(rng: &mut impl Rng, facts: &[Facts], depth: u32) -> String {
    if depth > 0 && rng.gen_bool(0.45) {
        let a = random_query(rng, facts, depth - 1);
        let b = random_query(rng, facts, depth - 1);
        let joined = match rng.gen_range(0..4) {
            0 => format!("({a}) && ({b})"),
            1 => format!("({a}) || ({b})"),
            2 => format!("!({a}) and {b}"),
            _ => format!("not ({a} or {b})"),
        };
        return joined;
    }
    let some = &facts[rng.gen_range(0..facts.len())];
    let ops = ["==", "!=", "<", "<=", ">", ">="];
    let op = ops[rng.gen_range(0..ops.len())];
    let eq = ["==", "!="][rng.gen_range(0..2)];
    let day = |d: DateTime<Utc>| format!("DateTime({})", d.format("%Y,%m,%d"));
    let quoted = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    match rng.gen_range(0..14) {
        0 => format!("ID {op} {}", some.id + rng.gen_range(-1..=1)),
        1 => format!("Key {eq} {}", quoted(&some.key)),
        2 => format!("Key.Contains({})", quoted(&some.key[..5])),
        3 => format!("Notes {eq} {}", quoted(&some.notes)),
        4 => format!(
            "notes.contains({})",
            quoted(["Bob", "bulk", "o", ""][rng.gen_range(0..4)])
        ),
        5 => {
            ["Block", "!Block", "block == false", "TrialActivation"][rng.gen_range(0..4)].to_owned()
        }
        6 => format!("F{} {eq} {}", rng.gen_range(1..=8), rng.gen_bool(0.5)),
        7 => format!("Expires {op} {}", day(some.expires)),
        8 => format!(
            "Created {op} {}",
            [
                "today",
                "yesterday",
                "tomorrow",
                "monthback",
                "monthforward"
            ][rng.gen_range(0..5)]
        ),
        9 => format!("Period {op} {}", some.period),
        10 => format!("MaxNoOfMachines {op} {}", some.machines),
        11 => format!(
            "Customer.Id {op} {}",
            some.customer.as_ref().map_or(0, |c| c.0)
        ),
        12 => match &some.customer {
            Some(c) => [
                format!("Customer.Name {eq} {}", quoted(&c.1)),
                format!("Customer.Email {eq} {}", quoted(&c.2)),
                format!("Customer.CompanyName.Contains({})", quoted(&c.3)),
            ][rng.gen_range(0..3)]
            .clone(),
            None => format!("Customer.Email {eq} \"\""),
        },
        _ => format!(
            "Customer.Created {op} {}",
            day(some.customer.as_ref().map_or(some.created, |c| c.4))
        ),
    }
}

/// The database answers every query as the reference evaluation does.
async fn queries_match_the_reference(app: &TestApp) {
    let pid = app.product("Suite", &["a", "b", "c", "d", "e"]).await;
    let ann = customer(app, "Ann Lee", "ann@example.com", "Ann \"Q\" Ltd").await;
    let bob = customer(app, "Bob", "bob@example.com", "").await;
    for (i, spec) in [
        json!({"features": ["a"], "notes": "sold to Bob", "customer_id": bob, "expires": "2030-01-01", "max_machines": 2}),
        json!({"features": ["a", "b"], "notes": "o'Brien", "customer_id": ann, "period_days": 30, "blocked": true}),
        json!({}),
        json!({"features": ["e"], "notes": "bulk", "period_days": 365, "trial_activation": true}),
        json!({"features": ["c", "d"], "customer_id": ann, "expires": "2001-05-05", "max_machines": 7}),
        json!({"features": ["a", "e"], "notes": "bulk", "customer_id": bob, "blocked": true}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut spec = spec;
        spec["product_id"] = json!(pid);
        for _ in 0..=i % 2 {
            app.license(spec.clone()).await;
        }
    }
    let tok = token(
        app,
        json!({"name": "keys", "permissions": ["cryptolens:getkeys"]}),
    )
    .await;
    let listing = keys(app, &tok, pid, &[]).await;
    let facts: Vec<Facts> = listing.body["licenseKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(Facts::read)
        .collect();
    assert_eq!(facts.len(), 9);
    let today = Utc::now().date_naive();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6e7_4e75);
    for _ in 0..150 {
        let query = random_query(&mut rng, &facts, 3);
        let filter = key_search::parse(&query, today)
            .unwrap_or_else(|e| panic!("{query}: {e}"))
            .unwrap();
        let expected: Vec<i64> = facts
            .iter()
            .filter(|f| filter.matches(&f.view()))
            .map(|f| f.id)
            .collect();
        assert_eq!(found(app, &tok, pid, &query).await, expected, "{query}");
    }
}
on_every_backend!(
    cryptolens_get_keys_answers_as_the_reference,
    queries_match_the_reference
);
