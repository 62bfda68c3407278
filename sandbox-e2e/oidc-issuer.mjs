// A local OpenID Connect issuer for the console's sign-in test (oauth2-mock-server from npm):
// discovery, JWKS (a fresh RS256 key), /authorize that sends the browser straight back with a
// code (PKCE S256 checked at /token, the nonce carried into the ID token), and /token. Every
// token names the person OIDC_EMAIL (default the sandbox agent's address) in the group `agent`.
//
//   node oidc-issuer.mjs <port>   → prints "issuer: http://127.0.0.1:<port>" once listening
import { OAuth2Server } from 'oauth2-mock-server';

const port = Number(process.argv[2] || 0);
const email = process.env.OIDC_EMAIL || 'sam@sandbox.invalid';
const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
// The issuer as omniline is told it (OIDC_ISSUER): its discovery document must say the same.
if (port) server.issuer.url = `http://127.0.0.1:${port}`;
server.service.on('beforeTokenSigning', (token) => {
  Object.assign(token.payload, {
    email,
    email_verified: true,
    'cognito:groups': ['agent'],
  });
});
await server.start(port, '127.0.0.1');
console.log(`issuer: ${server.issuer.url}`);
const stop = () => server.stop().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
