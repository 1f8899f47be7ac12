"""The library every worker imports: settings, errors, messages, the bucket and its layout, the
registry, the stage order and the stage runner. The local stack and the client live apart from it,
in `shared.stack` and `shared.client`."""
