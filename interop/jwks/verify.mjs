// node's jose (panva/jose) side of interop/jwks/run.sh: what a Node
// service sees.
//
//   node verify.mjs verify ISSUER AUDIENCE ALG TOKEN
//   node verify.mjs reject ISSUER AUDIENCE TOKEN
//
// The JWKS's address is the metadata's jwks_uri (at
// ISSUER/.well-known/oauth-authorization-server), and each run is a new
// createRemoteJWKSet: it fetches the set anew. Prints one line per check;
// exits 1 on the first that fails.
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify } from 'jose';

const [command, issuer, audience, ...rest] = process.argv.slice(2);
const metadata = await fetch(`${issuer}/.well-known/oauth-authorization-server`).then((r) => r.json());
const JWKS = createRemoteJWKSet(new URL(metadata.jwks_uri));
const options = { issuer, audience, algorithms: ['EdDSA', 'ES256'], typ: 'at+jwt' };

function fail(what) {
  console.log(`FAIL ${what}`);
  process.exit(1);
}

if (command === 'verify') {
  const [alg, token] = rest;
  if (decodeProtectedHeader(token).alg !== alg) fail(`jose: the token's alg is not ${alg}`);
  const { payload } = await jwtVerify(token, JWKS, {
    ...options,
    requiredClaims: ['exp', 'iat', 'sub', 'jti', 'client_id'],
  }).catch((e) => fail(`jose refused the ${alg} token: ${e.code} ${e.message}`));
  if (payload.sub !== 'johndoe') fail(`jose: sub ${payload.sub}`);
  console.log(`ok   jose createRemoteJWKSet + jwtVerify verifies the ${alg} token (iss, aud, typ at+jwt, exp)`);
  for (const [name, other] of [
    ['audience', { ...options, audience: 'another-api' }],
    ['issuer', { ...options, issuer: 'https://other.test' }],
  ]) {
    const refused = await jwtVerify(token, JWKS, other).then(
      () => false,
      (e) => e instanceof errors.JWTClaimValidationFailed,
    );
    if (!refused) fail(`jose accepted the ${alg} token for another ${name}`);
  }
  console.log(`ok   jose refuses the ${alg} token for another audience or issuer`);
} else if (command === 'reject') {
  const [token] = rest;
  await jwtVerify(token, JWKS, options).then(
    () => fail('jose accepted the old token'),
    (e) => {
      if (!(e instanceof errors.JWKSNoMatchingKey)) fail(`jose: ${e.code}, not ERR_JWKS_NO_MATCHING_KEY`);
      console.log(`ok   jose refuses the old token: ${e.code}`);
    },
  );
} else {
  fail(`unknown command ${command}`);
}
