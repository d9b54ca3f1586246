//! Bearer JWT verification: one crafted token per refusal, plus roles and the extractor.
#![allow(clippy::unwrap_used, reason = "tests panic on unexpected failures")]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use confidant_service::jwt::{
    AuthError, JwtIssuer, JwtVerifier, KeyError, TokenClaims, VerifyingKey, parse_keys,
};
use confidant_service::{ApiError, Forbidden, RequireAuth, require_role};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};
use tower::ServiceExt;

const ISS: &str = "https://issuer.test";
const AUD: &str = "confidant-verifier";
const NOW: u64 = 1_700_000_000;

struct Fixture {
    pkcs8: Vec<u8>,
    issuer: JwtIssuer,
    verifier: JwtVerifier,
}

fn fixture() -> Fixture {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap()
            .as_ref()
            .to_vec();
    let issuer = JwtIssuer::from_pkcs8(&pkcs8, Some("k1".into())).unwrap();
    let verifier = JwtVerifier::new(ISS, AUD, vec![issuer.verifying_key().unwrap()]).unwrap();
    Fixture {
        pkcs8,
        issuer,
        verifier,
    }
}

fn claims() -> Value {
    json!({ "iss": ISS, "aud": AUD, "sub": "alice", "exp": NOW + 300, "iat": NOW, "nbf": NOW,
            "roles": ["user"] })
}

/// Signs arbitrary header and claims with the fixture's key (ES256 signature regardless of `alg`).
fn craft(f: &Fixture, header: Value, claims: Value) -> String {
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &f.pkcs8,
        &SystemRandom::new(),
    )
    .unwrap();
    let input = format!(
        "{}.{}",
        B64.encode(serde_json::to_vec(&header).unwrap()),
        B64.encode(serde_json::to_vec(&claims).unwrap())
    );
    let sig = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(sig.as_ref()))
}

fn es256() -> Value {
    json!({ "alg": "ES256", "typ": "JWT", "kid": "k1" })
}

fn with(mut v: Value, key: &str, val: Value) -> Value {
    v[key] = val;
    v
}

#[test]
fn minted_token_verifies() {
    let f = fixture();
    let token = f
        .issuer
        .mint(&TokenClaims::new(ISS, AUD, "bob", &["admin"], NOW, 60))
        .unwrap();
    let p = f.verifier.verify(&token, NOW).unwrap();
    assert_eq!(p.subject, "bob");
    assert_eq!(p.roles, vec!["admin".to_owned()]);
    assert_eq!(require_role(&p, "admin"), Ok(()));
    assert_eq!(require_role(&p, "auditor"), Err(Forbidden));
}

#[test]
fn audience_array_containing_ours_is_accepted() {
    let f = fixture();
    let t = craft(&f, es256(), with(claims(), "aud", json!(["other", AUD])));
    assert_eq!(f.verifier.verify(&t, NOW).unwrap().subject, "alice");
}

#[test]
fn every_refusal_has_its_variant() {
    let f = fixture();
    let good = craft(&f, es256(), claims());
    let flipped = {
        let (input, sig) = good.rsplit_once('.').unwrap();
        let mut sig = B64.decode(sig).unwrap();
        sig[10] ^= 0x01;
        format!("{input}.{}", B64.encode(sig))
    };
    let unsigned = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none"}"#),
        B64.encode(serde_json::to_vec(&claims()).unwrap())
    );
    let hs256 = {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
        let input = format!(
            "{}.{}",
            B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            B64.encode(serde_json::to_vec(&claims()).unwrap())
        );
        let tag = ring::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", B64.encode(tag.as_ref()))
    };
    let cases: Vec<(&str, String, AuthError)> = vec![
        ("missing", String::new(), AuthError::Missing),
        ("two parts", "a.b".into(), AuthError::Malformed),
        ("garbage header", "!!.e30.AA".into(), AuthError::Malformed),
        ("oversized", "a".repeat(9000), AuthError::Malformed),
        ("alg none", unsigned, AuthError::BadAlgorithm),
        ("HS256", hs256, AuthError::BadAlgorithm),
        (
            "RS256",
            craft(&f, json!({"alg":"RS256","kid":"k1"}), claims()),
            AuthError::BadAlgorithm,
        ),
        ("flipped signature bit", flipped, AuthError::BadSignature),
        (
            "unknown kid",
            craft(&f, json!({"alg":"ES256","kid":"k2"}), claims()),
            AuthError::UnknownKey,
        ),
        (
            "expired",
            craft(&f, es256(), with(claims(), "exp", json!(NOW - 120))),
            AuthError::Expired,
        ),
        (
            "not yet valid",
            craft(&f, es256(), with(claims(), "nbf", json!(NOW + 600))),
            AuthError::NotYetValid,
        ),
        (
            "issued in future",
            craft(&f, es256(), with(claims(), "iat", json!(NOW + 600))),
            AuthError::NotYetValid,
        ),
        (
            "wrong iss",
            craft(&f, es256(), with(claims(), "iss", json!("https://evil"))),
            AuthError::WrongIssuer,
        ),
        (
            "wrong aud",
            craft(&f, es256(), with(claims(), "aud", json!("other"))),
            AuthError::WrongAudience,
        ),
        (
            "aud array without ours",
            craft(&f, es256(), with(claims(), "aud", json!(["a", "b"]))),
            AuthError::WrongAudience,
        ),
        (
            "no exp",
            craft(&f, es256(), with(claims(), "exp", Value::Null)),
            AuthError::Malformed,
        ),
        (
            "no sub",
            craft(&f, es256(), with(claims(), "sub", Value::Null)),
            AuthError::Malformed,
        ),
        (
            "empty sub",
            craft(&f, es256(), with(claims(), "sub", json!(""))),
            AuthError::Malformed,
        ),
        // The subject is logged and audited: only short printable ASCII without spaces/quotes.
        (
            "sub with a forged log line",
            craft(
                &f,
                es256(),
                with(claims(), "sub", json!("mallory\n{\"level\":\"INFO\"}")),
            ),
            AuthError::Malformed,
        ),
        (
            "sub with a space",
            craft(&f, es256(), with(claims(), "sub", json!("a b"))),
            AuthError::Malformed,
        ),
        (
            "sub too long",
            craft(&f, es256(), with(claims(), "sub", json!("a".repeat(129)))),
            AuthError::Malformed,
        ),
        (
            "crit header",
            craft(&f, json!({"alg":"ES256","kid":"k1","crit":["x"]}), claims()),
            AuthError::Malformed,
        ),
    ];
    for (name, token, expected) in cases {
        assert_eq!(f.verifier.verify(&token, NOW), Err(expected), "{name}");
    }
}

#[test]
fn leeway_tolerates_small_skew_only() {
    let f = fixture();
    let t = craft(&f, es256(), with(claims(), "exp", json!(NOW - 30)));
    assert!(f.verifier.verify(&t, NOW).is_ok());
    let strict = f.verifier.clone().with_leeway(0);
    assert_eq!(strict.verify(&t, NOW), Err(AuthError::Expired));
}

#[test]
fn kid_selects_among_keys_and_is_required_with_several() {
    let a = JwtIssuer::generate(Some("a".into())).unwrap();
    let b = JwtIssuer::generate(Some("b".into())).unwrap();
    let v = JwtVerifier::new(
        ISS,
        AUD,
        vec![a.verifying_key().unwrap(), b.verifying_key().unwrap()],
    )
    .unwrap();
    let claims = TokenClaims::new(ISS, AUD, "x", &[], NOW, 60);
    assert!(v.verify(&b.mint(&claims).unwrap(), NOW).is_ok());
    let anonymous = JwtIssuer::from_pkcs8(b.pkcs8().expose(), None).unwrap();
    assert_eq!(
        v.verify(&anonymous.mint(&claims).unwrap(), NOW),
        Err(AuthError::UnknownKey)
    );
    let dup = JwtVerifier::new(
        ISS,
        AUD,
        vec![a.verifying_key().unwrap(), a.verifying_key().unwrap()],
    );
    assert!(matches!(dup, Err(KeyError::AmbiguousKid)));
    assert!(matches!(
        JwtVerifier::new(ISS, AUD, vec![]),
        Err(KeyError::NoKeys)
    ));
}

#[test]
fn keys_load_from_jwk_jwks_pem_and_der() {
    let issuer = JwtIssuer::generate(Some("k".into())).unwrap();
    let expected = issuer.verifying_key().unwrap();
    let jwk = issuer.public_jwk();
    assert_eq!(
        parse_keys(jwk.to_string().as_bytes(), None).unwrap(),
        vec![expected.clone()]
    );
    let set = json!({ "keys": [jwk] }).to_string();
    assert_eq!(
        parse_keys(set.as_bytes(), None).unwrap(),
        vec![expected.clone()]
    );

    // SPKI from a certificate-free route: rcgen serialises the public key as SPKI.
    let pair = rcgen::KeyPair::from_der_and_sign_algo(
        &rustls::pki_types::PrivateKeyDer::Pkcs8(issuer.pkcs8().expose().to_vec().into()),
        &rcgen::PKCS_ECDSA_P256_SHA256,
    )
    .unwrap();
    let der = rcgen::PublicKeyData::subject_public_key_info(&pair);
    let kid = Some("k".to_owned());
    assert_eq!(
        parse_keys(&der, kid.clone()).unwrap(),
        vec![expected.clone()]
    );
    let pem = pair.public_key_pem();
    assert_eq!(
        parse_keys(pem.as_bytes(), kid.clone()).unwrap(),
        vec![expected]
    );

    let private = json!({"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}).to_string();
    assert!(matches!(
        parse_keys(private.as_bytes(), None),
        Err(KeyError::Jwk(_))
    ));
    assert!(matches!(
        VerifyingKey::from_spki_der(None, &der[..40]),
        Err(KeyError::NotP256)
    ));
}

#[derive(Clone)]
struct State(Arc<JwtVerifier>);

impl axum::extract::FromRef<State> for Arc<JwtVerifier> {
    fn from_ref(s: &State) -> Self {
        s.0.clone()
    }
}

async fn admin_only(RequireAuth(p): RequireAuth) -> Result<String, ApiError> {
    require_role(&p, "admin")?;
    Ok(p.subject)
}

#[tokio::test]
async fn extractor_maps_to_401_and_role_check_to_403() {
    // The extractor reads the wall clock, so mint for now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let issuer = JwtIssuer::generate(None).unwrap();
    let verifier =
        Arc::new(JwtVerifier::new(ISS, AUD, vec![issuer.verifying_key().unwrap()]).unwrap());
    let app = Router::new()
        .route("/admin", get(admin_only))
        .with_state(State(verifier));

    let call = |auth: Option<String>| {
        let app = app.clone();
        async move {
            let mut req = Request::get("/admin");
            if let Some(a) = auth {
                req = req.header(header::AUTHORIZATION, a);
            }
            app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
        }
    };
    let resp = call(None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));

    let user = issuer
        .mint(&TokenClaims::new(ISS, AUD, "u", &["user"], now, 60))
        .unwrap();
    assert_eq!(
        call(Some(format!("Bearer {user}"))).await.status(),
        StatusCode::FORBIDDEN
    );

    let admin = issuer
        .mint(&TokenClaims::new(ISS, AUD, "a", &["admin"], now, 60))
        .unwrap();
    assert_eq!(
        call(Some(format!("bearer {admin}"))).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        call(Some(format!("Basic {admin}"))).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let expired = issuer
        .mint(&TokenClaims::new(ISS, AUD, "a", &["admin"], now - 3600, 60))
        .unwrap();
    assert_eq!(
        call(Some(format!("Bearer {expired}"))).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
