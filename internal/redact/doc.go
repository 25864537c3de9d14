// Package redact hides secrets in what cdcd shows: config values in API
// responses, error texts stored or returned, and log lines. It parses the forms
// a secret takes rather than matching a fixed pattern:
//
//   - URLs (postgres://user:password@host/db?password=…): the password of the
//     user info, up to the last '@', and every query parameter with a
//     secret-looking name, the rest of the query kept;
//   - libpq key=value strings (host=h password='p w' PASSWORD=x\ y): quoted and
//     backslash-escaped values, keys in any case;
//   - JSON members ("password": "…"), as error texts sometimes quote documents;
//   - values under secret-looking config keys (password, secret, token,
//     private_key, api_key, credentials, passphrase, hmac_key, key), whole.
//
// A value made only of ${NAME} or ${file:/path} references is not a secret and
// stays visible. Every secret becomes Placeholder, which the API also accepts
// back to mean "keep the stored value".
//
// Over-redaction is the failure mode it picks: a URL whose query holds an '@'
// loses its host in the display, never the other way round. The functions are
// pure and safe for concurrent use.
package redact
