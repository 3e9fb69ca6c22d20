-- 005: the profile last acknowledged is stored in rostersync's own, platform-neutral shape
-- (`model::Profile`: key, first_name, last_name, email, role, active, client, locations,
-- position, program_type) instead of the first platform's user object, so that the ledger
-- serves every target. Rewritten in place, once; rows already neutral (or unreadable) are left
-- as they are. plan.csv reads these to show what an update changes.
UPDATE users SET profile = json_object(
        'key', key,
        'first_name', coalesce(json_extract(profile, '$.principal.first_name'), ''),
        'last_name', coalesce(json_extract(profile, '$.principal.last_name'), ''),
        'email', coalesce(json_extract(profile, '$.principal.email'), ''),
        'role', coalesce(json_extract(profile, '$.system.role'), ''),
        'active', json(CASE WHEN json_extract(profile, '$.system.status') = 'inactive'
                       THEN 'false' ELSE 'true' END),
        'client', coalesce(json_extract(profile, '$.context.client'), ''),
        'locations', json(coalesce(json_extract(profile, '$.context.locations'), '[]')),
        'position', json_extract(profile, '$.attributes.position'),
        'program_type', json_extract(profile, '$.attributes.program_type'))
    WHERE json_valid(profile) AND json_type(profile, '$.principal') = 'object';
