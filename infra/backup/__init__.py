"""Backups that restore: `python -m infra.backup create|keys|verify|restore|recovery-key`.

A data archive (`create`) is one age-encrypted tar stream (infra/backup/archive.py), members:

    db/<database>/<collection>.bson          every document, raw BSON, one after another
    db/<database>/<collection>.indexes.json  the collection's indexes but _id (keys, options)
    topics/<topic>/<partition>.bson          every record: offset, timestamp (and type), key,
                                             value, headers, as Kafka holds them
    groups.json                              every consumer group's committed offsets
    settings.json                            the NRW_* settings that are not secret
    manifest.json                            last: counts, and each member's size and SHA-256

A keys archive (`keys`) is the same format with secrets/<file> and person-keys/<file> members
(every key and password of the stack) and is kept apart from the data archives. Both are
encrypted to the organisation's recovery key (age X25519, made by `recovery-key`), whose
private half lives off the server. README: "Disaster recovery".
"""
