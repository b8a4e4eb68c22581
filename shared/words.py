"""The words people read for the codes of the API and the events, one table per vocabulary, and
`label`, the one way pages and documents turn a code into words in the reader's language.

No Flask app here (pages reach it through the `label` filter of shared/ui.py; letters and annexes,
made outside a request, name their language). The words are message ids marked for the catalog:
a code that is a word ("female") is its own message id, any other has words ("deportation
imminent"); `make translations` puts them in shared/translations, where each has its Korean."""

from __future__ import annotations

from flask_babel import gettext

from shared import i18n
from shared.i18n import N_

NONE = "—"  # what a page shows for no value

_SOURCE_TYPE = {
    "family": N_("family"), "fellow_escapee": N_("fellow escapee"), "broker": N_("broker"),
    "church_partner": N_("church partner"), "ngo_partner": N_("NGO partner"), "media": N_("media"), "other": N_("other"),
}

VOCABULARIES: dict[str, dict[str, str]] = {
    # intake: the person and the report
    "sex": {"female": N_("female"), "male": N_("male"), "unknown": N_("unknown")},
    "consent_advocacy": {"named": N_("named"), "anonymous": N_("anonymous"), "none": N_("none")},
    "consent_given_by": {"person": N_("person"), "family": N_("family"), "representative": N_("representative")},
    "vulnerability": {
        "minor": N_("minor"), "pregnant": N_("pregnant"), "elderly": N_("elderly"), "ill": N_("ill"),
        "prior_repatriation": N_("prior repatriation"), "religious_contact": N_("religious contact"),
        "contact_with_south_koreans": N_("contact with South Koreans"),
        "trafficking_victim": N_("victim of trafficking"),
    },
    "source_type": _SOURCE_TYPE,
    "reliability": {"confirmed": N_("confirmed"), "probable": N_("probable"), "unverified": N_("unverified")},
    # case: status, after return, asylum
    "case_status": {
        "reported": N_("reported"), "detained": N_("detained"), "deportation_imminent": N_("deportation imminent"),
        "released": N_("released"), "in_third_country": N_("in a third country"),
        "whereabouts_unknown": N_("whereabouts unknown"), "repatriated": N_("repatriated"),
        "resettled": N_("resettled"), "deceased": N_("deceased"), "closed_duplicate": N_("closed as a duplicate"),
        "closed_unfounded": N_("closed as unfounded"),
    },
    "custody": {"mss": N_("Ministry of State Security (MSS)"), "mps": N_("Ministry of People's Safety (MPS)"),
                "border_guards": N_("border guards"), "other": N_("other"), "unknown": N_("unknown")},
    "return_outcome": {
        "released": N_("released"), "labour_training_camp": N_("labour training camp"),
        "kyohwaso": N_("kyohwaso (reform-through-labour prison)"), "kwanliso": N_("kwanliso (political prison camp)"),
        "died_in_custody": N_("died in custody"), "disappeared": N_("disappeared"), "unknown": N_("unknown"),
    },
    "forced_labour": {"yes": N_("Yes"), "no": N_("No"), "unknown": N_("unknown")},
    "work": {"mining": N_("mining"), "logging": N_("logging"), "farming": N_("farming"),
             "construction": N_("construction"), "textiles": N_("textiles"),
             "wigs_eyelashes": N_("wigs and eyelashes"), "other": N_("other")},
    "ill_treatment": {"torture": N_("torture"), "sexual_violence": N_("sexual violence"),
                      "forced_abortion": N_("forced abortion"), "other": N_("other")},
    "asylum_procedure": {"art46": N_("Article 46 application (Exit and Entry Administration Law)"),
                         "unhcr_rsd": N_("UNHCR refugee status determination"),
                         "china_status": N_("Refugee status granted by China")},
    "asylum_step": {
        "applied": N_("applied"), "tic_issued": N_("temporary identity certificate issued"),
        "refused": N_("refused"), "no_answer": N_("no answer"), "granted": N_("status granted"),
        "requested": N_("requested"), "access_granted": N_("access granted"), "access_denied": N_("access denied"),
        "recognised": N_("recognised as a refugee"), "rejected": N_("rejected"),
    },
    # advocacy: appeals and UNHCR-access requests (the case page shows them too)
    "appeal_kind": {"urgent_appeal": N_("urgent appeal"), "allegation_letter": N_("allegation letter"),
                    "communication": N_("communication")},
    # "answered": the case service's own stage of an appeal (an answer received, whatever it was)
    "appeal_status": {"draft": N_("draft"), "issued": N_("issued"), "answered": N_("answered"),
                      "response_received": N_("response received"), "no_response": N_("no response")},
    "appeal_outcome": {"response_received": N_("response received"), "no_response": N_("no response")},
    "appeal_origin": {"deportation_clock": N_("deportation clock"), "manual": N_("written by an advocate")},
    # an appeal's history note: the clock's, or its episode's end (services/advocacy/domain.py)
    "appeal_note": {"deportation_clock": N_("deportation clock"),
                    "the case is no longer at imminent risk of deportation":
                        N_("the case is no longer at imminent risk of deportation")},
    "request_status": {"sent": N_("sent"), "acknowledged": N_("acknowledged"), "granted": N_("granted"),
                       "denied": N_("denied"), "no_response": N_("no response")},
    "request_outcome": {"acknowledged": N_("acknowledged"), "granted": N_("granted"), "denied": N_("denied"),
                        "no_response": N_("no response")},
    "channel": {"email": N_("email"), "fax": N_("fax"), "letter": N_("letter"), "meeting": N_("meeting"),
                "phone": N_("telephone"), "online_form": N_("online form")},
    # accounts
    "role": {"caseworker": N_("caseworker"), "advocate": N_("advocate"), "analyst": N_("analyst"),
             "admin": N_("admin")},
}


def words(code: str, vocabulary: str) -> str:
    """The message id of a code's words (the code itself when the vocabulary has no words for it)."""
    return VOCABULARIES[vocabulary].get(code, code)


def label(code, vocabulary: str, lang: str | None = None) -> str:
    """A code as words: in the page's language, or in `lang` ("en", "ko") for a document made
    outside a request; "—" for no value, and a code the vocabulary does not know as it is."""
    if not code:  # None, "", or a value the page does not have (Jinja's Undefined)
        return NONE
    message = words(str(code), vocabulary)
    if lang is None:
        return gettext(message)
    return message if lang == "en" else i18n.catalog_words(lang).get(message, message)
