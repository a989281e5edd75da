// WebAuthn for the account page: options from the server (JSON, binary fields in base64url)
// become what navigator.credentials takes, and the credential it gives back becomes JSON the
// server reads. Written out rather than PublicKeyCredential.parse*/toJSON, which older
// browsers lack.

export function passkeysHere(config) {
  return Boolean(window.PublicKeyCredential && navigator.credentials) && config.passkeys;
}

function bytesOf(base64url) {
  const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0)).buffer;
}

function base64urlOf(buffer) {
  let binary = "";
  for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function withIds(descriptors = []) {
  return descriptors.map((d) => ({ ...d, id: bytesOf(d.id) }));
}

export async function createPasskey(options) {
  const publicKey = {
    ...options,
    challenge: bytesOf(options.challenge),
    user: { ...options.user, id: bytesOf(options.user.id) },
    excludeCredentials: withIds(options.excludeCredentials),
  };
  const credential = await navigator.credentials.create({ publicKey });
  const response = credential.response;
  return credentialJson(credential, {
    clientDataJSON: base64urlOf(response.clientDataJSON),
    attestationObject: base64urlOf(response.attestationObject),
    transports: response.getTransports ? response.getTransports() : [],
  });
}

export async function getPasskey(options) {
  const publicKey = {
    ...options,
    challenge: bytesOf(options.challenge),
    allowCredentials: withIds(options.allowCredentials),
  };
  const credential = await navigator.credentials.get({ publicKey });
  const response = credential.response;
  return credentialJson(credential, {
    clientDataJSON: base64urlOf(response.clientDataJSON),
    authenticatorData: base64urlOf(response.authenticatorData),
    signature: base64urlOf(response.signature),
    userHandle: response.userHandle ? base64urlOf(response.userHandle) : undefined,
  });
}

function credentialJson(credential, response) {
  return {
    id: credential.id,
    rawId: base64urlOf(credential.rawId),
    type: credential.type,
    response,
    clientExtensionResults: credential.getClientExtensionResults(),
  };
}
