SUMMARY = "Build, sign, inspect and verify rustupdate artifacts (.rua)"
DESCRIPTION = "rustupdate-artifact packs a filesystem image into a signed .rua artifact for \
the rustupdate client, adds signatures later (key file or external signer command), and \
inspects and verifies artifacts. The native variant is used by image_types_rustupdate.bbclass."

require rustupdate.inc

BBCLASSEXTEND = "native nativesdk"
