// A local OpenID Connect issuer for the console's sign-in test (oauth2-mock-server from npm):
// discovery, JWKS (a fresh RS256 key), /authorize that sends the browser straight back with a
// code (PKCE S256 checked at /token, the nonce carried into the ID token), and /token. A token
// names the person signed in at the issuer: the browser's `mock_person` cookie on the issuer's
// origin (an email; a test sets it per browser context, as a real issuer keeps a session), else
// OIDC_EMAIL (default the sandbox agent's address); in the group `agent`, and `admin` too for
// an email starting with `admin`.
//
//   node oidc-issuer.mjs <port>   → prints "issuer: http://127.0.0.1:<port>" once listening
import { OAuth2Server } from 'oauth2-mock-server';

const port = Number(process.argv[2] || 0);
const email = process.env.OIDC_EMAIL || 'sam@sandbox.invalid';
const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
// The issuer as omniline is told it (OIDC_ISSUER): its discovery document must say the same.
if (port) server.issuer.url = `http://127.0.0.1:${port}`;
// Who each code was issued to: the person signed in at /authorize.
const people = new Map();
const cookie = (req, name) => {
  for (const part of String(req.headers.cookie || '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return decodeURIComponent(value.join('='));
  }
  return null;
};
server.service.on('beforeAuthorizeRedirect', ({ url }, req) => {
  const code = url.searchParams.get('code');
  if (code) people.set(code, cookie(req, 'mock_person') || email);
});
server.service.on('beforeTokenSigning', (token, req) => {
  const code = req.body && req.body.code;
  const person = (code && people.get(code)) || email;
  Object.assign(token.payload, {
    email: person,
    email_verified: true,
    'cognito:groups': person.startsWith('admin') ? ['agent', 'admin'] : ['agent'],
  });
});
await server.start(port, '127.0.0.1');
console.log(`issuer: ${server.issuer.url}`);
const stop = () => server.stop().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
