{#- latest_spec: each workflow's latest spec version, one row per workflow (all columns of
    workflow_versions). Reports describe a workflow as its spec is now: its category (the spec's,
    else settings' default_category), its steps, objective and holdout; an edit that moves a
    workflow to another category moves its whole history with it. -#}
{% macro latest_spec() -%}
SELECT * FROM {{ source('cswf', 'workflow_versions') }}
    QUALIFY row_number() OVER (PARTITION BY workflow
                               ORDER BY first_seen_tick DESC, version DESC) = 1
{%- endmacro %}
