-- Text search over case names and descriptions: trigram indexes let the
-- substring match (`ILIKE '%words%'`) find its cases without reading every
-- case; at a million cases the scan took seconds. pg_trgm ships with
-- PostgreSQL and is a trusted extension (13 and later): the database's
-- owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX cases_name_trgm ON cases USING gin (name gin_trgm_ops);
CREATE INDEX cases_description_trgm ON cases USING gin (description gin_trgm_ops);
