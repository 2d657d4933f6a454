-- A lower-cased text of each resource's code, name, summary and data item names, kept by the
-- code that writes resources, so a search rejects non-matching resources with one LIKE.
-- Keep in step with migrations/sqlite/0003_search_text.sql.
ALTER TABLE resources ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE resources SET search_text = LOWER(code || chr(10) || name || chr(10) || summary || chr(10) ||
    COALESCE((SELECT string_agg(label_zh || ' ' || name, chr(10)) FROM data_items i WHERE i.resource_id = resources.id), ''));
