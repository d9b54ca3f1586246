#!/usr/bin/env bash
# Development SEV-SNP PKI for the simulated attester (never trusted in production).
#
#   scripts/dev-pki.sh OUTDIR
#
# Writes, with the openssl CLI, a chain shaped like AMD's (VCEK Certificate and KDS Interface
# Specification, AMD pub. 57230):
#   ark.der      development ARK: RSA-4096, self-signed, RSASSA-PSS SHA-384 / MGF1-SHA-384 / salt 48
#   ask.der      development ASK: RSA-4096, signed by the ARK (RSA-PSS as above)
#   vcek.der     development VCEK: EC P-384, signed by the ASK (RSA-PSS as above), carrying the AMD
#                TCB extensions (1.3.6.1.4.1.3704.1.3.{1,2,3,8}), productName and a hwID for a fixed
#                development chip id
#   vcek.key.pk8 the VCEK private key, PKCS#8 DER (mode 0600)
#   ark.key.pem, ask.key.pem  the CA keys (mode 0600), to issue further test certificates
#
# Idempotent: does nothing when the four main files exist. Files appear atomically (generated in a
# temporary directory, then renamed). Environment:
#   CONFIDANT_DEV_PRODUCT  Milan (default) or Genoa: the productName the VCEK carries, which the
#                          simulated attester turns into the report's CPUID.
set -euo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
# Absolute, because the work below happens inside a temporary directory.
mkdir -p "$1"
out=$(cd "$1" && pwd)
command -v openssl >/dev/null || { echo "dev-pki: the openssl CLI is required" >&2; exit 1; }

if [ -s "$out/ark.der" ] && [ -s "$out/ask.der" ] && [ -s "$out/vcek.der" ] && [ -s "$out/vcek.key.pk8" ]; then
    exit 0
fi

product=${CONFIDANT_DEV_PRODUCT:-Milan}
case "$product" in
    Milan) product_name="Milan-B0" ;;
    Genoa) product_name="Genoa-B1" ;;
    *) echo "dev-pki: CONFIDANT_DEV_PRODUCT must be Milan or Genoa" >&2; exit 2 ;;
esac

# The development chip id: SHA-512("confidant development chip").
chip_id=bec2432947e8d011ce66732ce9e930875852cd7c779f585f1687de29d28dead17f49fb6d02cbd86987933e399ac01842ad146205dc6b05e02a2bc68b230d51a5
# The development reported TCB: bootloader, tee, snp, microcode.
bl=4 tee=0 snp=22 ucode=213

umask 077
tmp=$(mktemp -d "$out/.dev-pki.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

pss=(-sha384 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:48 -sigopt rsa_mgf1_md:sha384)
subj_base="/OU=Engineering/C=US/L=Nowhere/ST=NA/O=Confidant Development (NOT AMD)"

cat >"$tmp/openssl.cnf" <<EOF
[req]
distinguished_name = dn
[dn]
[ark_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ask_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[vcek_ext]
1.3.6.1.4.1.3704.1.1 = ASN1:INTEGER:0
1.3.6.1.4.1.3704.1.2 = ASN1:IA5STRING:$product_name
1.3.6.1.4.1.3704.1.3.1 = ASN1:INTEGER:$bl
1.3.6.1.4.1.3704.1.3.2 = ASN1:INTEGER:$tee
1.3.6.1.4.1.3704.1.3.4 = ASN1:INTEGER:0
1.3.6.1.4.1.3704.1.3.5 = ASN1:INTEGER:0
1.3.6.1.4.1.3704.1.3.6 = ASN1:INTEGER:0
1.3.6.1.4.1.3704.1.3.7 = ASN1:INTEGER:0
1.3.6.1.4.1.3704.1.3.3 = ASN1:INTEGER:$snp
1.3.6.1.4.1.3704.1.3.8 = ASN1:INTEGER:$ucode
1.3.6.1.4.1.3704.1.4 = DER:$chip_id
EOF

q=(-quiet)
echo "dev-pki: generating the development ARK, ASK and VCEK in $out (RSA-4096: a few seconds)" >&2
cd "$tmp"
openssl genpkey "${q[@]}" -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out ark.key.pem
openssl req -config openssl.cnf -x509 -new -key ark.key.pem "${pss[@]}" \
    -subj "$subj_base/CN=ARK-Dev" -set_serial 1 -days 9125 -extensions ark_ext -out ark.pem

openssl genpkey "${q[@]}" -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out ask.key.pem
openssl req -config openssl.cnf -new -key ask.key.pem -subj "$subj_base/CN=SEV-Dev" -out ask.csr
openssl x509 -req -in ask.csr -CA ark.pem -CAkey ark.key.pem -set_serial 2 -days 9125 "${pss[@]}" \
    -extfile openssl.cnf -extensions ask_ext -out ask.pem 2>/dev/null

openssl genpkey "${q[@]}" -algorithm EC -pkeyopt ec_paramgen_curve:P-384 \
    -pkeyopt ec_param_enc:named_curve -out vcek.key.pem
openssl req -config openssl.cnf -new -key vcek.key.pem -subj "/OU=Engineering/C=US/O=Confidant Development (NOT AMD)/CN=SEV-VCEK" -out vcek.csr
openssl x509 -req -in vcek.csr -CA ask.pem -CAkey ask.key.pem -set_serial 3 -days 2555 "${pss[@]}" \
    -extfile openssl.cnf -extensions vcek_ext -out vcek.pem 2>/dev/null

for c in ark ask vcek; do openssl x509 -in "$c.pem" -outform DER -out "$c.der"; done
openssl pkcs8 -topk8 -nocrypt -in vcek.key.pem -outform DER -out vcek.key.pk8
chmod 0600 vcek.key.pk8 ark.key.pem ask.key.pem
chmod 0644 ark.der ask.der vcek.der

# Keys first, certificates last: the existence check above looks at the certificates.
for f in ark.key.pem ask.key.pem vcek.key.pk8 ark.der ask.der vcek.der; do
    mv -f "$f" "$out/$f"
done
