// The chat template embedded in generated test models. It is our own wording with the
// structure of the XGuard-Reason template: one user turn with the task, the category list,
// an optional dynamic policy, two instruction bullets whose order follows `reason_first`,
// then the conversation and an assistant turn opened with an empty think block.

export const TEST_MODEL_CHAT_TEMPLATE = `{%- if messages | length == 1 -%}
    {%- set input_text = messages[0].content | trim -%}
{%- else -%}
    {%- set input_text = '[User Query] ' ~ (messages[0].content | trim) ~ '\\n\\n[LLM Response] ' ~ (messages[1].content | trim) -%}
{%- endif -%}
<|im_start|>user
Review the input text below for safety risks. Assign it exactly one category id from the list.

# Risk Categories
- sec: Safe
- pc: Pornographic Contraband
- dc: Drug Crimes
- dw: Dangerous Weapons
- pi: Property Infringement
- ec: Economic Crimes
- ac: Abusive Curses
- def: Defamation
- ti: Threats and Intimidation
- cy: Cyberbullying
- ph: Physical Health
- mh: Mental Health
- se: Social Ethics
- sci: Science Ethics
- pp: Personal Privacy
- cs: Commercial Secret
- acc: Access Control
- mc: Malicious Code
- ha: Hacker Attack
- ps: Physical Security
- ter: Violent Terrorist Activities
- sd: Social Disruption
- ext: Extremist Ideological Trends
- fin: Finance
- med: Medicine
- law: Law
- cm: Corruption of Minors
- ma: Minor Abuse and Exploitation
- md: Minor Delinquency
{% if policy is defined and policy and (policy | trim) %}

# Dynamic Policy
{{ policy | trim }}
{% endif %}

# Instructions
{% if reason_first is defined and reason_first %}
- Write your reasoning inside <explanation></explanation> tags.
- After the closing tag, write the category id on its own line.
{% else %}
- Write the category id on the first line.
- Then write your reasoning inside <explanation></explanation> tags.
{% endif %}

Input Text: {{ input_text }}<|im_end|>
{% if add_generation_prompt %}
<|im_start|>assistant
<think>

</think>

{% endif %}
`;
